"""The simulated users of bench_load.py: browser tabs that speak Gradio's API as the studio's page does.

A queued event (Generate) is a POST to /gradio_api/queue/join and its answer from the /gradio_api/queue/data
stream; an unqueued one (Inspect's click) one POST to /gradio_api/run/predict; then a GET of the PNG the
answer shows. Each user has its own session, seed and clicks, and checks that every answer is its own.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

GENERATED = 32  # the bundled faces' width and height: clicks fall anywhere on them
MAX_CLICKS_PER_USER = 5000  # a bound on any phase, whatever the timing
TIMEOUT = 60.0


class Studio:
    """What every user needs from /config: the Generate and click events, their inputs' defaults."""

    def __init__(self, config: dict) -> None:
        components = {c["id"]: c for c in config["components"]}
        ids = {c.get("props", {}).get("elem_id"): i for i, c in components.items()}

        def event(elem_id: str, name: str):
            target = [ids[elem_id], name]
            dependency = next(d for d in config["dependencies"] if target in [list(t) for t in d["targets"]])
            defaults = [components[i].get("props", {}).get("value") for i in dependency["inputs"]]
            return dependency["id"], ids[elem_id], defaults, dependency.get("queue") is not False

        self.generate = event("inspect-generate", "click")
        self.click = event("inspect-image", "select")


@dataclass
class User:
    """One simulated browser tab: its own session, seed, clicks and what it saw."""

    number: int
    session_hash: str = field(default_factory=lambda: secrets.token_hex(6))
    pixels: list[tuple[float, float]] = field(default_factory=list)  # its queries, in generated-image pixels
    folder: str | None = None  # where its files are served from
    clicks: list[float] = field(default_factory=list)  # answer latency, seconds
    files: list[float] = field(default_factory=list)  # fetching the answer's PNG files, seconds
    generates: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    foreign: int = 0  # answers that were not this session's own


async def run_event(client, studio_event, user: User, data: list, event_data=None) -> dict:
    """Run an event as the page does: a queued one joins the queue and reads its answer from the session's
    stream; one that is not queued (Inspect's click) is one POST."""
    fn_index, trigger, _, queued = studio_event
    if not queued:
        answer = await client.post("/gradio_api/run/predict", json={
            "data": data, "event_data": event_data, "fn_index": fn_index, "trigger_id": trigger,
            "session_hash": user.session_hash})
        if answer.status_code != 200:
            raise RuntimeError(f"event failed: {answer.text[:200]}")
        return answer.json()["data"]
    joined = await client.post("/gradio_api/queue/join", json={
        "data": data, "event_data": event_data, "fn_index": fn_index, "trigger_id": trigger,
        "session_hash": user.session_hash})
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    async with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": user.session_hash}) as stream:
        async for line in stream.aiter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                if not message.get("success"):
                    raise RuntimeError(f"event failed: {message.get('output')}")
                return message["output"]["data"]
    raise RuntimeError("the stream ended without the answer")


def listed_pixels(details: str) -> list[str]:
    """The '(x, y)' pixel column of the query table in the answer."""
    return re.findall(r"<tr><td>\d+</td><td>(\([^)]*\))</td>", details)


def check_answer(user: User, outputs: list, owners: dict[str, int]) -> None:
    """Count the answer as foreign unless it lists exactly this user's queries in this user's folder."""
    # Five slots; the sixth click on takes the oldest one's slot, so slot i shows the newest click numbered i mod 5.
    clicks = len(user.pixels)
    shown = [user.pixels[max(j for j in range(clicks) if j % 5 == slot)] for slot in range(min(clicks, 5))]
    expected = [f"({x:.0f}, {y:.0f})" for x, y in shown]
    folders = {str(Path(item["path"]).parent) for item in outputs if isinstance(item, dict) and "path" in item}
    user.folder = user.folder or next(iter(folders), None)
    owner = owners.setdefault(user.folder, user.number)
    if listed_pixels(outputs[2]) != expected or folders != {user.folder} or owner != user.number:
        user.foreign += 1


async def fetch_files(client, outputs: list) -> None:
    """GET the PNG files an answer shows, once each, as the page does (a download button fetches only when
    pressed); a missing one is an error."""
    shown = {item["url"]: item for item in outputs
             if isinstance(item, dict) and item.get("url") and str(item.get("path", "")).endswith(".png")}
    for item in shown.values():
        answer = await client.get(item["url"])
        if answer.status_code != 200:
            raise RuntimeError(f"GET {Path(item['path']).name}: {answer.status_code}")


async def act(client, studio: Studio, user: User, owners, rng: random.Random, generate: bool) -> None:
    """One Generate (queries kept) or one click at a random pixel; timed and checked."""
    started = time.perf_counter()
    try:
        if generate:
            data = list(studio.generate[2])
            data[1] = 100 + user.number  # a seed of its own
            outputs = await run_event(client, studio.generate, user, data)
            user.generates.append(time.perf_counter() - started)
            return
        index = [rng.uniform(0, GENERATED), rng.uniform(0, GENERATED)]  # the clickable image sends image pixels
        user.pixels.append((index[0], index[1]))
        outputs = await run_event(client, studio.click, user, [None, "G.attn0"], {"index": index, "value": None})
        user.clicks.append(time.perf_counter() - started)
        check_answer(user, outputs, owners)
        fetched = time.perf_counter()
        await fetch_files(client, outputs)
        user.files.append(time.perf_counter() - fetched)
    except Exception as error:  # counted, and the user goes on as a person would
        user.errors.append(f"{type(error).__name__}: {error}"[:200])


async def simulate(url: str, studio: Studio, users: int, seconds: float, paced: bool, seed: int) -> list[User]:
    """users tabs for seconds: paced, a click a second and a Generate every 10th second; else back to back."""
    import httpx

    owners: dict[str, int] = {}
    limits = httpx.Limits(max_connections=4 * users)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
        async def one(user: User) -> None:
            rng = random.Random(seed * 1000 + user.number)
            await act(client, studio, user, owners, rng, generate=True)
            start = time.monotonic() + rng.random()  # users do not click in step
            for tick in range(MAX_CLICKS_PER_USER):
                due = start + tick if paced else time.monotonic()
                if due - start >= seconds:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if paced and tick % 10 == 9:
                    await act(client, studio, user, owners, rng, generate=True)  # then this second's click
                await act(client, studio, user, owners, rng, generate=False)
        crowd = [User(number) for number in range(users)]
        await asyncio.gather(*(one(user) for user in crowd))
    return crowd

"""The attention studio's speed: server-side click time, click-to-map in a browser, and start-up.

    python benchmarks/bench_studio.py [--checkpoint PATH] [--checkpoints DIR] [--quick]

Prints a Markdown table and writes the numbers to benchmarks/results/studio.json (load average included).
The CPU is shared with training runs, so every target is a ratio measured in one run or percentiles with
the load stated; CPU time (time.process_time) is given beside wall time because it moves less with load.

1. Server side, click -> rendered answer: the studio's own image.select callback (InspectTab.click, i.e.
   views.inspect_view + save_png) called with a gr.SelectData at a random display pixel, 1-5 queries
   present (target p50 <= 15 ms). Each click's parts are then timed on the same inputs: query_view per
   query, figure_for_queries, clickable_image, the PNG written for the download button, the grid and the
   Markdown; then Gradio's own postprocessing of the outputs (the PNG encodes it does outside the callback).
   A subset is run again with render.py's functions wrapped in timers, to say where figure time goes, and
   with the draw_smoothly this benchmark proposes (draw_smoothly_cropped below) as a what-if.
2. End to end in Chromium, click dispatched -> new map loaded: a capture-phase click listener stamps
   performance.now(); page.wait_for_function (polling each animation frame) stamps it again when every
   watched <img> shows a new src and is complete. The studio (#inspect-figure and #inspect-grid) is timed
   against a trivial Gradio app (one gr.Image whose .select returns a precomputed figure of the same size),
   both served by this process on two ports, clicks interleaved A, B, A, B (target ratio <= 1.3x).
3. Start-up: `python launch.py --no-browser --port P --checkpoints DIR` until / and /config answer 200,
   median of 3 (target <= 10 s); a probe process splits imports from build_app.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # runnable as a plain script from anywhere
RESULTS_PATH = REPOSITORY / "benchmarks" / "results" / "studio.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SEED = 7  # the studio's default seed


def default_checkpoint() -> Path:
    """The newest step_*.safetensors of faces32-sagan under checkpoints/, else under runs/."""
    for folder in (REPOSITORY / "checkpoints" / "faces32-sagan", REPOSITORY / "runs" / "faces32-sagan"):
        found = sorted(folder.glob("step_*.safetensors")) if folder.is_dir() else []
        if found:
            return found[-1]
    raise SystemExit("no checkpoints/faces32-sagan or runs/faces32-sagan step_*.safetensors; pass --checkpoint")


def summary(seconds: list[float]) -> dict:
    """p50, p95, mean and count, in milliseconds."""
    values = sorted(1e3 * s for s in seconds)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return {"p50": statistics.median(values), "p95": p95, "mean": statistics.fmean(values), "n": len(values)}


def load() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def timed(function, *args):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


# 1. Server side ---------------------------------------------------------------------------------------------

def event_function(demo, elem_id: str, event: str):
    """The BlockFunction wired to (component with elem_id, event) in demo."""
    for block_fn in demo.fns.values():
        if any(getattr(demo.blocks.get(target), "elem_id", None) == elem_id and name == event
               for target, name in block_fn.targets):
            return block_fn
    raise LookupError(f"no {event} event on #{elem_id}")


def generate_in_studio(demo, checkpoint: Path):
    """Run the studio's own Generate callback; returns (state, layer) as the page would hold them."""
    from sagan_viz.app.state import InspectState

    outputs = event_function(demo, "inspect-generate", "click").fn(str(checkpoint), SEED, "ema", None, InspectState())
    state, layer_update = outputs[5], outputs[6]
    return state, layer_update["value"]


def random_index(rng: random.Random, display: int, avoid_cell, cell_of) -> list[int]:
    """A random display pixel [x, y] whose feature cell differs from avoid_cell (so the β grid changes)."""
    while True:
        index = [rng.randrange(display), rng.randrange(display)]
        if cell_of(index) != avoid_cell:
            return index


def display_side(state) -> int:
    """Width of the clickable image as the studio shows it (the generated image upscaled)."""
    from sagan_viz.app.views import display_scale

    width = state.generation.image.shape[1]
    return width * display_scale(width)


def cell_function(state, layer: str, display: int):
    """display index [x, y] -> the query cell under it on layer's grid."""
    from sagan_viz.grid import pixel_to_cell

    shape = state.generation.layers[layer].query_shape
    return lambda index: pixel_to_cell(index[0] + 0.5, index[1] + 0.5, (display, display), shape)


def part_timings(generation, layer: str, pixels) -> dict[str, float]:
    """Wall seconds of each piece of inspect_view + save_png, each called on its own (files cleaned up)."""
    from sagan_viz.app import views
    from sagan_viz.queries import figure_for_queries

    seconds = {}
    query_views, seconds["query_view x n"], _ = timed(views.query_views, generation, layer, pixels)
    figure, seconds["figure_for_queries"], _ = timed(figure_for_queries, generation, layer, list(pixels))
    _, seconds["clickable_image"], _ = timed(views.clickable_image, generation, query_views)
    path, seconds["save_png (download)"], _ = timed(views.save_png, figure)
    os.unlink(path)
    last = query_views[-1].attention_map
    _, seconds["grid + Markdown"], _ = timed(
        lambda: (views.attention_grid_image(last, max(4, 256 // last.shape[1])),
                 views.describe_queries(generation, layer, query_views)))
    return seconds


def gradio_postprocess_seconds(demo, block_fn, outputs, loop) -> tuple[float, dict[str, float]]:
    """Gradio's postprocess_data of the click's outputs (PNG encodes, cache copies), and per component."""
    from gradio.state_holder import SessionState

    started = time.perf_counter()
    loop.run_until_complete(demo.postprocess_data(block_fn, list(outputs), SessionState(demo)))
    total = time.perf_counter() - started
    per_component = {}
    for block, value in zip(block_fn.outputs, outputs):
        if getattr(block, "elem_id", None) in ("inspect-image", "inspect-figure", "inspect-grid"):
            _, per_component[f"gr.Image #{block.elem_id}"], _ = timed(block.postprocess, value)
    return total, per_component


@contextmanager
def wrapped_in_timers(module, names: list[str], totals: dict[str, float]):
    """Replace module.<name> by a wrapper adding its wall time to totals[name] (module globals, so callers
    inside the module see it); restored on exit."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name, function):
        def timer(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
        return timer

    for name, function in originals.items():
        setattr(module, name, wrap(name, function))
    try:
        yield totals
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def draw_smoothly_cropped(display, paint):
    """Proposed render.draw_smoothly: same supersampled paint, but only the painted box is downsampled,
    with Image.reduce (a box filter: exact coverage anti-aliasing) instead of LANCZOS over the whole layer."""
    from PIL import Image, ImageDraw
    from sagan_viz.render import SUPERSAMPLING as factor

    width, height = display.size
    layer = Image.new("RGBA", (width * factor, height * factor), (0, 0, 0, 0))
    paint(ImageDraw.Draw(layer), factor)
    result = display.convert("RGBA")
    box = layer.getbbox()
    if box is not None:
        left, top = box[0] // factor * factor, box[1] // factor * factor
        right, bottom = -(-box[2] // factor) * factor, -(-box[3] // factor) * factor
        result.alpha_composite(layer.crop((left, top, right, bottom)).reduce(factor), (left // factor, top // factor))
    return result.convert("RGB")


RENDER_PARTS = ["draw_smoothly", "attention_overlay", "fitted_font", "write_lines", "figure_layout"]


def figure_internals(generation, layer: str, pixels) -> dict[str, float]:
    """Seconds inside render.py's costly helpers during one figure_for_queries and one clickable_image."""
    from sagan_viz import render
    from sagan_viz.app import views
    from sagan_viz.queries import figure_for_queries

    result = {}
    for part, call in (("figure", lambda: figure_for_queries(generation, layer, list(pixels))),
                       ("clickable", lambda: views.clickable_image(generation, views.query_views(generation, layer, pixels)))):
        totals: dict[str, float] = {}
        with wrapped_in_timers(render, RENDER_PARTS, totals):
            _, total, _ = timed(call)
        result.update({f"{part}: {name}": seconds for name, seconds in totals.items()})
        result[f"{part}: total"] = total
    return result


def what_if(generation, layer: str, pixels, proposed_first: bool) -> dict[str, float]:
    """inspect_view as shipped against inspect_view with draw_smoothly_cropped (in the order given),
    PNG of the figure at compress_level 6 (PIL's default) against 1, and the largest pixel difference."""
    import io

    import numpy as np
    from sagan_viz import render
    from sagan_viz.app import views

    def with_cropped():
        original = render.draw_smoothly
        render.draw_smoothly = draw_smoothly_cropped
        try:
            return timed(views.inspect_view, generation, layer, pixels)
        finally:
            render.draw_smoothly = original

    if proposed_first:
        proposed, seconds_proposed, _ = with_cropped()
    shipped, seconds_shipped, _ = timed(views.inspect_view, generation, layer, pixels)
    if not proposed_first:
        proposed, seconds_proposed, _ = with_cropped()
    png = {}
    for level in (6, 1):
        _, png[level], _ = timed(lambda: shipped.figure.save(io.BytesIO(), format="PNG", compress_level=level))
    difference = np.abs(np.asarray(shipped.figure, np.int16) - np.asarray(proposed.figure, np.int16))
    return {"inspect_view shipped": seconds_shipped, "inspect_view cropped": seconds_proposed,
            "png level 6": png[6], "png level 1": png[1], "max pixel difference": float(difference.max()),
            "mean pixel difference": float(difference.mean())}


def server_side_benchmark(demo, checkpoint: Path, clicks: int, warm_up: int, detail_every: int,
                          rng: random.Random) -> dict:
    """Time the real click callback at random pixels with 1-5 queries, then its parts on the same inputs."""
    import gradio as gr
    from sagan_viz.app.state import add_query, display_click_to_pixel
    block_fn = event_function(demo, "inspect-image", "select")
    state, layer = generate_in_studio(demo, checkpoint)
    width, display = state.generation.image.shape[1], display_side(state)
    cell_of = cell_function(state, layer, display)
    loop = asyncio.new_event_loop()
    rows, load_start = [], load()
    for number in range(clicks + warm_up):  # the first warm_up clicks fill caches and are dropped
        count = rng.randint(1, 5)  # queries present after the click
        prior = [random_index(rng, display, None, cell_of) for _ in range(count - 1)]
        index = random_index(rng, display, cell_of(prior[-1]) if prior else None, cell_of)
        clicked_state = dataclasses.replace(
            state, queries=[display_click_to_pixel(i, (display, display), (width, width)) for i in prior])
        event = gr.SelectData(target=None, data={"index": index, "value": None})
        outputs, wall, cpu = timed(block_fn.fn, clicked_state, layer, event)
        pixels = add_query(clicked_state.queries, display_click_to_pixel(index, (display, display), (width, width)))
        row = {"queries": count, "callback_s": wall, "callback_cpu_s": cpu, "parts": part_timings(state.generation, layer, pixels)}
        row["gradio_postprocess_s"], row["gradio_components"] = gradio_postprocess_seconds(demo, block_fn, outputs, loop)
        os.unlink(outputs[4])  # the callback's download PNG (the app itself never deletes these)
        if (number - warm_up) % detail_every == 0:
            row["internals"] = figure_internals(state.generation, layer, pixels)
            row["what_if"] = what_if(state.generation, layer, pixels, proposed_first=number % 2 == 1)
        if number >= warm_up:
            rows.append(row)
    loop.close()
    return summarise_server_side(rows, layer, display, load_start)


def summarise_server_side(rows: list[dict], layer: str, display: int, load_start) -> dict:
    """Percentiles of the callback, medians of every part, per query count."""
    def median_ms(values):
        return 1e3 * statistics.median(values) if values else None

    parts = {name: median_ms([r["parts"][name] for r in rows]) for name in rows[0]["parts"]}
    components = {name: median_ms([r["gradio_components"][name] for r in rows]) for name in rows[0]["gradio_components"]}
    detailed = [r for r in rows if "internals" in r]
    internals = {}
    for name in sorted({k for r in detailed for k in r["internals"]}):
        total = f"{name.split(':')[0]}: total"
        internals[name] = {"p50_ms": median_ms([r["internals"].get(name, 0.0) for r in detailed]),
                           "share_p50": statistics.median(r["internals"].get(name, 0.0) / r["internals"][total] for r in detailed)}
    what_if_rows = {name: median_ms([r["what_if"][name] for r in detailed]) for name in detailed[0]["what_if"]} if detailed else {}
    for name in ("max pixel difference", "mean pixel difference"):
        if what_if_rows:
            what_if_rows[name] = max(r["what_if"][name] for r in detailed)
    return {
        "layer": layer, "display_pixels": display, "clicks": len(rows), "detailed_clicks": len(detailed),
        "load_average_start": load_start, "load_average_end": load(),
        "callback_ms": summary([r["callback_s"] for r in rows]),
        "callback_cpu_ms": summary([r["callback_cpu_s"] for r in rows]),
        "callback_p50_by_query_count": {k: median_ms([r["callback_s"] for r in rows if r["queries"] == k]) for k in range(1, 6)},
        "parts_p50_ms": parts, "gradio_postprocess_ms": summary([r["gradio_postprocess_s"] for r in rows]),
        "gradio_components_p50_ms": components, "figure_internals_p50_ms": internals, "what_if_p50_ms": what_if_rows,
    }


# 2. End to end in a browser ---------------------------------------------------------------------------------

PAGE_TIMER = """() => {
    window.__bench = {clicked: null};
    window.addEventListener('click', () => { window.__bench.clicked = performance.now(); }, true);
}"""
NEW_IMAGES_SHOWN = """([selectors, old]) => {
    for (let i = 0; i < selectors.length; i++) {
        const img = document.querySelector(selectors[i] + ' img');
        if (!img || !img.complete || img.naturalWidth === 0 || img.src === old[i]) return false;
    }
    window.__bench.shown = performance.now();
    return true;
}"""


def sources(page, selectors: list[str]) -> list[str]:
    """The current src of each selector's <img> ('' where there is none)."""
    return page.evaluate("s => s.map(q => { const i = document.querySelector(q + ' img'); return i ? i.src : ''; })",
                         selectors)


def click_and_wait(page, target: str, fraction: tuple[float, float], watched: list[str]) -> float:
    """Click target at a fraction of its <img>; seconds from the page's click event to every watched image new."""
    old = sources(page, watched)
    box = page.locator(f"{target} img").first.bounding_box()
    page.mouse.click(box["x"] + fraction[0] * box["width"], box["y"] + fraction[1] * box["height"])
    page.wait_for_function(NEW_IMAGES_SHOWN, arg=[watched, old], polling="raf", timeout=60_000)
    stamps = page.evaluate("() => [window.__bench.clicked, window.__bench.shown]")
    return (stamps[1] - stamps[0]) / 1e3


def trivial_app(figures: list):
    """One gr.Image; each select returns the next precomputed figure (PIL, PNG, as the studio's figure)."""
    import gradio as gr

    served = iter(figures[1:])
    with gr.Blocks(title="trivial") as demo:
        image = gr.Image(figures[0], format="png", interactive=False, elem_id="trivial-image", buttons=[])
        image.select(lambda: next(served), None, image)
    return demo


def serve(demo) -> str:
    """Launch demo on a free local port without blocking; returns its URL."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}"


def browser_plan(state, layer: str, pairs: int, rng: random.Random) -> list[list[int]]:
    """Display pixels for the studio's clicks: cycles of 5 (1..5 queries present), each in a new cell."""
    display = display_side(state)
    cell_of = cell_function(state, layer, display)
    plan, previous = [], None
    for _ in range(pairs):
        index = random_index(rng, display, previous, cell_of)
        plan.append(index)
        previous = cell_of(index)
    return plan


def matched_figures(state, layer: str, plan: list[list[int]]) -> list:
    """For the trivial app: per click, the figure with as many queries as the studio shows then, made unique
    by one pixel so that no two have the same cached URL (the studio's never do)."""
    from sagan_viz.app.state import display_click_to_pixel
    from sagan_viz.queries import figure_for_queries

    width, display = state.generation.image.shape[1], display_side(state)
    pixels = [display_click_to_pixel(i, (display, display), (width, width)) for i in plan[:5]]
    bases = [figure_for_queries(state.generation, layer, pixels[:count]) for count in range(1, 6)]
    figures = [bases[0]]  # shown before the first click
    for number in range(len(plan)):  # the studio shows number % 5 + 1 queries after click number
        figure = bases[number % 5].copy()
        figure.putpixel((number % figure.width, 0), (number % 251, 0, 0))
        figures.append(figure)
    return figures


def browser_benchmark(studio_url: str, trivial_url: str, plan: list[list[int]], display: int) -> dict:
    """Interleaved A (studio) / B (trivial) click -> new map shown, in Chromium, one tab each."""
    from playwright.sync_api import sync_playwright

    studio_seconds, trivial_seconds, load_start = [], [], load()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pages = {}
        for name, url in (("studio", studio_url), ("trivial", trivial_url)):
            pages[name] = browser.new_page(viewport={"width": 1400, "height": 1100})
            pages[name].set_default_timeout(60_000)
            pages[name].goto(url)
            pages[name].evaluate(PAGE_TIMER)
        studio, trivial = pages["studio"], pages["trivial"]
        studio.bring_to_front()
        old = sources(studio, ["#inspect-image"])
        studio.click("#inspect-generate")
        studio.wait_for_function(NEW_IMAGES_SHOWN, arg=[["#inspect-image"], old], polling="raf")
        trivial.wait_for_selector("#trivial-image img")
        for number, index in enumerate(plan):
            studio.bring_to_front()
            if number and number % 5 == 0:  # back to one query: click "Clear queries" (not timed)
                old = sources(studio, ["#inspect-figure"])
                studio.click("#inspect-clear")
                studio.wait_for_function(NEW_IMAGES_SHOWN, arg=[["#inspect-figure"], old], polling="raf")
            fraction = ((index[0] + 0.5) / display, (index[1] + 0.5) / display)
            studio_seconds.append(click_and_wait(studio, "#inspect-image", fraction, ["#inspect-figure", "#inspect-grid"]))
            trivial.bring_to_front()
            trivial_seconds.append(click_and_wait(trivial, "#trivial-image", (0.5, 0.5), ["#trivial-image"]))
        visibility = [page.evaluate("document.visibilityState") for page in (studio, trivial)]
        browser.close()
    studio_summary, trivial_summary = summary(studio_seconds), summary(trivial_seconds)
    pair_ratios = [a / b for a, b in zip(studio_seconds, trivial_seconds)]
    return {"pairs": len(plan), "studio_ms": studio_summary, "trivial_ms": trivial_summary,
            "ratio_p50": studio_summary["p50"] / trivial_summary["p50"],
            "ratio_p95": studio_summary["p95"] / trivial_summary["p95"],
            "pair_ratio_median": statistics.median(pair_ratios), "visibility_at_end": visibility,
            "load_average_start": load_start, "load_average_end": load()}


# 3. Start-up ------------------------------------------------------------------------------------------------

STARTUP_PROBE = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, {repository!r})
import gradio
gradio_done = time.perf_counter()
from sagan_viz.app import build_app
imported = time.perf_counter()
build_app({checkpoints!r}, device="auto")
print(json.dumps({{"import_gradio_s": gradio_done - started, "import_studio_s": imported - gradio_done,
                  "build_app_s": time.perf_counter() - imported}}))
"""


def answers(url: str) -> bool:
    """True when url answers HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def launch_once(checkpoints: Path, environment: dict) -> dict:
    """Seconds from starting launch.py to its banner line (imports + build) and to / and /config answering."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(REPOSITORY / "launch.py"), "--no-browser", "--port", str(port), "--checkpoints", str(checkpoints)],
        cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    banner = {}

    def read_output() -> None:
        for line in process.stdout:
            if "studio on http" in line and "s" not in banner:
                banner["s"] = time.perf_counter() - started

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        while not (answers(f"http://127.0.0.1:{port}/") and answers(f"http://127.0.0.1:{port}/config")):
            if process.poll() is not None:
                raise RuntimeError(f"launch.py exited with {process.returncode} before answering")
            if time.perf_counter() - started > 180:
                raise RuntimeError("launch.py did not answer within 180 s")
            time.sleep(0.05)
        answered = time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
    return {"to_banner_s": banner.get("s"), "to_http_200_s": answered}


def probe_once(checkpoints: Path, environment: dict) -> dict:
    """A fresh Python timing import gradio, import sagan_viz.app, build_app; plus its whole wall time."""
    code = STARTUP_PROBE.format(repository=str(REPOSITORY), checkpoints=str(checkpoints))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        raise RuntimeError(f"start-up probe failed:\n{done.stderr}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "probe_wall_s": time.perf_counter() - started}


def startup_benchmark(checkpoints: Path, runs: int, probe: bool, environment: dict) -> dict:
    """launch.py and (unless probe is False) the probe, alternating, runs times each; medians and every value."""
    launches, probes, load_start = [], [], load()
    for _ in range(runs):
        launches.append(launch_once(checkpoints, environment))
        if probe:
            probes.append(probe_once(checkpoints, environment))
    median = {key: statistics.median(r[key] for r in launches) for key in ("to_banner_s", "to_http_200_s")}
    median.update({key: statistics.median(r[key] for r in probes) for key in (probes[0] if probes else {})})
    return {"checkpoints": str(checkpoints), "runs": runs, "median_s": median, "launches": launches,
            "probes": probes, "load_average_start": load_start, "load_average_end": load()}


# Report -----------------------------------------------------------------------------------------------------

def report(results: dict) -> str:
    """The headline table, then where a click's time goes."""
    server, browser, startup = results["server_side"], results["browser"], results["startup"]
    callback, cpu = server["callback_ms"], server["callback_cpu_ms"]
    verdict = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    lines = [
        f"{results['machine']} · {results['cpus']} CPUs · torch {results['torch']} ({results['torch_threads']} threads) · "
        f"gradio {results['gradio']} · checkpoint `{results['checkpoint']}` · load average (1 min) "
        f"{results['load_average_start'][0]} at start, {results['load_average_end'][0]} at end · {results['wall_s']:.0f} s"
        + (" · --quick: smoke run, not a result" if results["quick"] else ""),
        "",
        "| measurement | value | target | met |", "|---|---|---|---|",
        f"| 1. server click -> answer (InspectTab.click), {server['clicks']} clicks, 1-5 queries: wall p50 / p95 "
        f"| {callback['p50']:.1f} / {callback['p95']:.1f} ms (CPU {cpu['p50']:.1f} / {cpu['p95']:.1f} ms) "
        f"| p50 <= 15 ms | {verdict(callback['p50'] <= 15)} |",
        f"| 1b. + Gradio postprocess of the outputs (outside the callback), p50 | {server['gradio_postprocess_ms']['p50']:.1f} ms | - | - |",
        f"| 2. browser click -> new map shown, studio p50 / p95 ({browser['pairs']} interleaved pairs) "
        f"| {browser['studio_ms']['p50']:.0f} / {browser['studio_ms']['p95']:.0f} ms | - | - |",
        f"| 2. same, trivial Gradio image app p50 / p95 | {browser['trivial_ms']['p50']:.0f} / {browser['trivial_ms']['p95']:.0f} ms | - | - |",
        f"| 2. ratio studio / trivial (p50; per-pair median {browser['pair_ratio_median']:.2f}x) "
        f"| {browser['ratio_p50']:.2f}x | <= 1.3x | {verdict(browser['ratio_p50'] <= 1.3)} |",
        f"| 3. `launch.py` -> / and /config answer 200, median of {startup['runs']} "
        f"| {startup['median_s']['to_http_200_s']:.1f} s | <= 10 s | {verdict(startup['median_s']['to_http_200_s'] <= 10)} |",
        f"| 3. of which: launch.py's banner (imports + build_app done) | {startup['median_s']['to_banner_s']:.1f} s | - | - |",
    ]
    if startup["probes"]:
        median = startup["median_s"]
        lines.append(f"| 3. probe: import gradio / import sagan_viz.app (torch, ...) / build_app / python start-up "
                     f"| {median['import_gradio_s']:.1f} / {median['import_studio_s']:.1f} / {median['build_app_s']:.2f} / "
                     f"{median['probe_wall_s'] - median['import_gradio_s'] - median['import_studio_s'] - median['build_app_s']:.1f} s | - | - |")
    lines += [
        "", "Where a server-side click goes (p50 of each piece timed alone on the same inputs, ms):", "",
        "| piece | p50 ms |", "|---|---|",
    ]
    lines += [f"| {name} | {value:.1f} |" for name, value in server["parts_p50_ms"].items()]
    lines += [f"| Gradio {name}.postprocess (PNG encode) | {value:.1f} |" for name, value in server["gradio_components_p50_ms"].items()]
    lines += [f"| inside {name} | {v['p50_ms']:.1f} ({100 * v['share_p50']:.0f}% of that call) |"
              for name, v in server["figure_internals_p50_ms"].items() if not name.endswith("total")]
    lines += [f"| what-if: {name} | {value:.2f} |" for name, value in server["what_if_p50_ms"].items()]
    by_count = ", ".join(f"{k}: {v:.0f}" for k, v in server["callback_p50_by_query_count"].items() if v is not None)
    lines += ["", f"Callback p50 by queries present (ms): {by_count}."]
    return "\n".join(lines)


def settings(quick: bool) -> dict:
    """How much to measure; --quick is a smoke run under a minute, not a result."""
    if quick:
        return {"clicks": 4, "warm_up": 1, "detail_every": 2, "pairs": 2, "startup_runs": 1, "probe": False}
    return {"clicks": 200, "warm_up": 3, "detail_every": 5, "pairs": 60, "startup_runs": 3, "probe": True}


def main() -> None:
    """Parse flags, measure (start-up first, while nothing else of ours runs), print and write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="the 32x32 SAGAN checkpoint (default: newest faces32-sagan)")
    parser.add_argument("--checkpoints", type=Path, help="folder launch.py lists (default: the checkpoint's folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    args = parser.parse_args()
    checkpoint = (args.checkpoint or default_checkpoint()).resolve()
    checkpoints = (args.checkpoints or checkpoint.parent).resolve()
    plan, rng = settings(args.quick), random.Random(0)
    cache_folder = tempfile.mkdtemp(prefix="bench-studio-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = cache_folder  # Gradio's cached outputs go here and are removed at the end
    os.environ["TMPDIR"] = tempfile.tempdir = cache_folder  # and so do the download PNGs the studio never deletes
    environment = dict(os.environ)
    started, load_start = time.perf_counter(), load()
    try:
        startup = startup_benchmark(checkpoints, plan["startup_runs"], plan["probe"], environment)
        import gradio as gr
        import torch
        from sagan_viz.app import build_app

        studio = build_app(checkpoints, checkpoint=checkpoint, device="cpu")
        server_side = server_side_benchmark(studio, checkpoint, plan["clicks"], plan["warm_up"], plan["detail_every"], rng)
        state, layer = generate_in_studio(studio, checkpoint)
        clicks = browser_plan(state, layer, plan["pairs"], rng)
        trivial = trivial_app(matched_figures(state, layer, clicks))
        urls = [serve(studio), serve(trivial)]
        try:
            browser = browser_benchmark(*urls, clicks, display_side(state))
        finally:
            studio.close()
            trivial.close()
    finally:
        shutil.rmtree(cache_folder, ignore_errors=True)
    results = {
        "quick": args.quick, "checkpoint": str(checkpoint.relative_to(REPOSITORY) if checkpoint.is_relative_to(REPOSITORY) else checkpoint),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "gradio": gr.__version__, "python": platform.python_version(),
        "load_average_start": load_start, "load_average_end": load(), "wall_s": time.perf_counter() - started,
        "server_side": server_side, "browser": browser, "startup": startup,
    }
    markdown = report(results)
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({**results, "markdown": markdown}, indent=2) + "\n")
    print(markdown)
    print(f"\nwritten: {RESULTS_PATH.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()

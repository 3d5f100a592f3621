"""Server side of a click in the studio: the Inspect tab's own callback, then Gradio's postprocessing.

bench_studio.py calls measure_server_side(). A user's session is replayed: random pixels are clicked one
after another, and after every fifth query the queries are cleared (as "Clear queries" does), so each
click finds the figure columns of the earlier queries already drawn, as it does in the app. Each click is
timed in two parts that run one after the other on the server before the answer can be sent:
- callback: InspectTab.click (query views, figure, markers, table, the PNG files written; the raw grid is off);
- Gradio's postprocess_data of its outputs (copying the files into Gradio's cache, the table, the state).
Inside the callback, the library calls are wrapped in timers to say where the time goes.
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import time
from contextlib import contextmanager

SEED = 7  # the studio's default seed
TIMED_PARTS = ("query_views", "paper_figure", "describe_queries")


def summary(seconds: list[float]) -> dict:
    """p50, p95, mean and count, in milliseconds."""
    values = sorted(1e3 * s for s in seconds)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return {"p50": statistics.median(values), "p95": p95, "mean": statistics.fmean(values), "n": len(values)}


def event_function(demo, elem_id: str, event: str):
    """The BlockFunction wired to (component with elem_id, event) in demo."""
    for block_fn in demo.fns.values():
        if any(getattr(demo.blocks.get(target), "elem_id", None) == elem_id and name == event
               for target, name in block_fn.targets):
            return block_fn
    raise LookupError(f"no {event} event on #{elem_id}")


def generate_in_studio(demo, checkpoint, class_choice: str = "", truncation: float | None = None):
    """Run the studio's own Generate callback with its default controls (the seed's class, the family's
    truncation, EMA weights, the first layer); returns (state, layer) as the page would hold them."""
    from sagan_viz.app.state import InspectState

    generate = event_function(demo, "inspect-generate", "click").fn
    outputs = generate(str(checkpoint), SEED, class_choice, truncation, "ema", None, InspectState())
    state, layer_update = outputs[6], outputs[7]
    return state, layer_update["value"]


def display_side(state) -> int:
    """Width of the clickable image as the studio shows it (the generated image upscaled)."""
    from sagan_viz.app.views import display_scale

    width = state.generation.image.shape[1]
    return width * display_scale(width)


def query_cell(state, layer: str, display: int, index) -> tuple[int, int]:
    """The query cell on layer's grid under display pixel index [x, y]."""
    from sagan_viz.grid import pixel_to_cell

    shape = state.generation.layers[layer].query_shape
    return pixel_to_cell(index[0] + 0.5, index[1] + 0.5, (display, display), shape)


def image_index(state, display: int, index) -> list[float]:
    """The clickable image's select index (generated-image pixels) for a click at the centre of display pixel index."""
    width = state.generation.image.shape[1]
    return [(index[0] + 0.5) * width / display, (index[1] + 0.5) * width / display]


def random_index(rng: random.Random, display: int, avoid_cell, cell_of) -> list[int]:
    """A random display pixel [x, y] whose query cell differs from avoid_cell (so the β row changes)."""
    while True:
        index = [rng.randrange(display), rng.randrange(display)]
        if cell_of(index) != avoid_cell:
            return index


@contextmanager
def timers_around(module, names, totals: dict[str, float]):
    """Replace module.<name> by a wrapper that adds its wall time to totals[name]; restored on exit."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started
        return timed

    for name, function in originals.items():
        setattr(module, name, wrap(name, function))
    try:
        yield totals
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


def measure_server_side(demo, checkpoint, clicks: int, warm_up: int, rng: random.Random) -> dict:
    """Replay clicks in one session; per click the callback's and Gradio's postprocessing's wall time."""
    import gradio as gr
    from gradio.state_holder import SessionState

    from sagan_viz.app import views
    from sagan_viz.app.png_files import PngFiles

    click_fn = event_function(demo, "inspect-image", "select")
    state, layer = generate_in_studio(demo, checkpoint)
    display = display_side(state)
    session, loop, rows, previous = SessionState(demo), asyncio.new_event_loop(), [], None
    for number in range(warm_up + clicks):
        if number % 5 == 0:
            state = dataclasses.replace(state, queries=[])  # what "Clear queries" does
        index = random_index(rng, display, previous, lambda i: query_cell(state, layer, display, i))  # noqa: B023 (called now)
        previous = query_cell(state, layer, display, index)
        event = gr.SelectData(target=None, data={"index": image_index(state, display, index), "value": None})
        parts: dict[str, float] = {}
        with timers_around(views, TIMED_PARTS, parts), timers_around(PngFiles, ["write"], parts):
            started = time.perf_counter()
            outputs = click_fn.fn(state, layer, event)
            callback = time.perf_counter() - started
        started = time.perf_counter()
        loop.run_until_complete(demo.postprocess_data(click_fn, list(outputs), session))
        postprocess = time.perf_counter() - started
        state = outputs[-1]
        if number >= warm_up:  # the first clicks fill caches (fonts, imports) and are dropped
            rows.append({"queries": len(state.queries), "callback": callback, "postprocess": postprocess,
                         "parts": parts})
    loop.close()
    return summarise(rows, layer, display)


def summarise(rows: list[dict], layer: str, display: int) -> dict:
    """Percentiles of callback, postprocessing and both; medians of the parts and per query count."""
    def median_ms(values):
        values = list(values)
        return 1e3 * statistics.median(values) if values else None

    parts = {name: median_ms(row["parts"].get(name, 0.0) for row in rows) for name in (*TIMED_PARTS, "write")}
    by_count = {count: median_ms(r["callback"] + r["postprocess"] for r in rows if r["queries"] == count)
                for count in range(1, 6)}
    return {
        "layer": layer, "display_pixels": display, "clicks": len(rows),
        "callback_ms": summary([r["callback"] for r in rows]),
        "postprocess_ms": summary([r["postprocess"] for r in rows]),
        "total_ms": summary([r["callback"] + r["postprocess"] for r in rows]),
        "total_p50_ms_by_queries": by_count,
        "callback_parts_p50_ms": parts,
    }

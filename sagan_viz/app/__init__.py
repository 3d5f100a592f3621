"""The studio: build_app(...) -> gr.Blocks. Building never launches, so tests can drive it."""
from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from ..devices import describe_device, resolve_device
from .attribution_tab import AttributionTab
from .catalog import ModelCache, StatisticsCache, discover_checkpoints, entry_for, newest_checkpoint
from .compare_tab import CompareTab
from .dynamics_tab import DynamicsTab
from .inspect_tab import InspectTab
from .lecture_guide import LECTURE_GUIDE
from .server import Studio
from .session_files import StudioFiles
from .teaching_tab import TeachingTab

# How the studio is served, by launch.py and by the benchmarks alike. run_history=False: Gradio would
# otherwise store every event's inputs and outputs in the browser's localStorage, rewriting up to 100
# stored runs on every click (measured: the click-to-map time grew from ~60 ms to ~100 ms over 60 clicks),
# and a click answered from server-side state could not be replayed from there anyway.
LAUNCH_SETTINGS = {"run_history": False, "show_error": False}

# Events of one kind running at once. Gradio's default, 1 per event listener, made 8 users' clicks wait in
# one line (p95 430-580 ms at human pace against 200-310 ms with 2-8; 4 served saturation best:
# benchmarks/README.md, bench_load.py). Callbacks are thread-safe: per-session state, a shared read-only
# model cache, a lock around each model's forwards.
CONCURRENCY_LIMIT = 4
# After every event Gradio rebuilds a pandas summary of the last 10,000 events for its monitoring page, which
# the studio does not enable: 3 ms of CPU per click, 9 ms once 10,000 events are stored, holding the GIL.
# Summarised once in a billion events instead (an environment setting stays the user's to override).
ANALYTICS_EVERY = str(10**9)
# How often Gradio's queue looks for new events while it has none: Gradio's default on Linux is every
# millisecond, which kept an idle studio at 5.4% of a core; every 10 ms, 2.0% (measured, README "Several
# users"). A queued event (Generate) may start up to 10 ms later; clicks are not queued.
QUEUE_IDLE_POLL_SECONDS = 0.01
# Gradio's own temporary files (uploads no callback claimed, pictures of the tabs that return arrays):
# checked every 10 minutes, removed after an hour. The studio's figures and kept uploads go with their session.
DELETE_CACHE = (600, 3600)

INTRO = (
    "# sagan-viz · inside a self-attention GAN\n"
    "Generate an image, then **click pixels**: each click is a query point *j*, and the map beside it is "
    "its attention row β<sub>j,·</sub> (Zhang et al. 2018, eq. 1) with arrows to where it looks. "
    "Running on **{device}**."
)


def build_app(
    checkpoint_dir: str | Path = "checkpoints", checkpoint: str | Path | None = None, device: str = "auto",
    allowed_hosts: tuple[str, ...] = (),
) -> Studio:
    """The whole studio over the checkpoints in checkpoint_dir (plus an explicit one, opened first).

    allowed_hosts: Host names to answer to besides 127.0.0.1, localhost and the address served ("*": any).
    """
    torch_device = resolve_device(device)
    entries = discover_checkpoints(checkpoint_dir) if Path(checkpoint_dir).is_dir() else []
    default = newest_checkpoint(entries)
    if checkpoint is not None:
        default = entry_for(checkpoint)  # a bad --checkpoint fails here, before any server starts
        entries = [e for e in entries if e.path.resolve() != default.path.resolve()] + [default]
    cache = ModelCache(torch_device)
    files = StudioFiles(on_upload_removed=cache.forget)  # each session's figures and uploads, removed when it ends
    with Studio(title="sagan-viz", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(INTRO.format(device=describe_device(torch_device)))
        with gr.Accordion("Lecture guide: a short script for a class (start here)", open=False,
                          elem_id="lecture-guide"):
            gr.Markdown(LECTURE_GUIDE)
        if not entries:
            gr.Markdown(f"No checkpoints found in `{checkpoint_dir}`: upload one in the Inspect tab.")
        with gr.Tabs():
            tabs = [InspectTab(cache, entries, default, files), CompareTab(cache, entries, default, files),
                    AttributionTab(cache, entries, default, files), TeachingTab(cache, entries, default, files)]
            with gr.Tab("Inspect", id="inspect"):
                tabs[0].build()
            with gr.Tab("Compare", id="compare"):
                tabs[1].build()
            with gr.Tab("Attribution", id="attribution"):
                tabs[2].build()
            with gr.Tab("Training dynamics", id="dynamics"):
                DynamicsTab(StatisticsCache(cache), entries, default, files).build(demo)
            with gr.Tab("Teaching", id="teaching"):
                tabs[3].build()
        if default is not None:  # ready on open: every tab shows the default checkpoint's image at once
            for tab in tabs:
                demo.load(*tab.ready_on_open)
        demo.unload(files.end_session)
    demo.allowed_hosts, demo.session_files = tuple(allowed_hosts), files
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", ANALYTICS_EVERY)  # read when the queue is made
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT)
    queue = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free"):  # Gradio's own attribute; tests notice if a new Gradio renames it
        queue.sleep_when_free = QUEUE_IDLE_POLL_SECONDS
    return demo

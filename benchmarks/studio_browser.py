"""Click -> new map on screen in Chromium: the studio against trivial Gradio apps, served by a child process.

bench_studio.py calls measure_in_browser(). The apps run in their own Python process, as they do under
`python launch.py`, so that the browser driver's thread does not take the server's GIL; the child is this
module run as `python -m benchmarks.studio_browser --serve ...` from the repository root, which prints one
JSON line (URLs and the click plan) and serves until its stdin closes.

Three apps, clicked in turn A, B, C, ... in one browser:
- studio: the Inspect tab; a click is timed until #inspect-figure shows its new image (the markers come in
  the same answer; the raw grid is off, as it is by default).
- trivial: one gr.Image whose .select returns a precomputed figure of the size the studio shows at that
  click (Gradio's defaults: it shows the loading overlay, and Gradio encodes the PNG).
- trivial, no overlay: the same with show_progress="hidden", as the studio's click has.
- trivial files (only when asked for, as bench_biggan.py does): the figures written beforehand as PNG files
  in a folder Gradio serves as it is (the studio's own way), returned as paths, no overlay: Gradio at its
  leanest, without the PNG encoding that the trivial apps pay on every click (~140 ms for a 6-Mpx figure).
A capture-phase click listener stamps performance.now(); a requestAnimationFrame poll stamps it again when
every watched <img> has a new src and has finished loading.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.studio_server import (
    SEED,
    display_side,
    generate_in_studio,
    image_index,
    query_cell,
    random_index,
    summary,
)

REPOSITORY = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
APPS = {  # name -> (the clicked image, the images that must be new before a click counts as answered)
    "studio": ("#inspect-image", ["#inspect-figure"]),
    "trivial": ("#trivial-image", ["#trivial-image"]),
    "trivial_no_overlay": ("#trivial-image", ["#trivial-image"]),
    "trivial_files": ("#trivial-image", ["#trivial-image"]),
}
DEFAULT_APPS = ("studio", "trivial", "trivial_no_overlay")
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


# The child: serve the three apps ----------------------------------------------------------------------------

def click_plan(state, layer: str, pairs: int, rng: random.Random) -> list[list[int]]:
    """Display pixels for the studio's clicks, each in another query cell than the one before."""
    display = display_side(state)
    plan, previous = [], None
    for _ in range(pairs):
        index = random_index(rng, display, previous, lambda i: query_cell(state, layer, display, i))
        plan.append(index)
        previous = query_cell(state, layer, display, index)
    return plan


def matched_figures(state, layer: str, plan: list[list[int]]) -> list:
    """Per click, the figure with as many queries as the studio then shows (it clears after every fifth),
    made unique by one pixel so that no two share a cached URL (the studio's never do). The figures are the
    studio's own (inspect_view's), so they have its size whatever scale it draws at for this model."""
    from sagan_viz.app.views import inspect_view

    display = display_side(state)
    pixels = [tuple(image_index(state, display, index)) for index in plan[:5]]  # the centres of the clicked pixels
    bases = [inspect_view(state.generation, layer, pixels[:count]).figure for count in range(1, 6)]
    figures = [bases[0]]  # shown before the first click
    for number in range(len(plan)):
        figure = bases[number % 5].copy()
        figure.putpixel((number % figure.width, 0), (number % 251, 0, 0))
        figures.append(figure)
    return figures


def trivial_app(figures: list, show_progress: str):
    """One gr.Image; each select returns the next precomputed figure (a PIL image: Gradio encodes it)."""
    import gradio as gr

    served = iter(figures[1:])
    with gr.Blocks(title="trivial") as demo:
        image = gr.Image(figures[0], format="png", interactive=False, elem_id="trivial-image", buttons=[])
        image.select(lambda: next(served), None, image, show_progress=show_progress)
    return demo


def trivial_files_app(figures: list):
    """Like trivial_app without its overlay, but each select returns the path of a PNG written beforehand."""
    import gradio as gr

    from sagan_viz.app.png_files import served_png_files

    files = served_png_files()
    served = iter([files.write(figure) for figure in figures[1:]])
    with gr.Blocks(title="trivial files") as demo:
        image = gr.Image(files.write(figures[0]), format="png", interactive=False, elem_id="trivial-image", buttons=[])
        image.select(lambda: next(served), None, image, show_progress="hidden")
    return demo


def launch_on_free_port(demo) -> str:
    """Launch demo as launch.py does, on a free local port, without blocking; returns its URL.

    The trivial apps get the studio's settings too (no run history in the browser), so that the baseline
    is Gradio at its leanest.
    """
    import socket

    from sagan_viz.app import LAUNCH_SETTINGS

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
    return f"http://127.0.0.1:{port}"


def serve(checkpoint: Path, pairs: int, seed: int, names: tuple[str, ...] = DEFAULT_APPS) -> None:
    """Build and launch the studio and the trivial apps, print URLs and the click plan, serve until stdin ends."""
    from sagan_viz.app import build_app

    studio = build_app(checkpoint.parent, checkpoint=checkpoint, device="cpu")
    state, layer = generate_in_studio(studio, checkpoint)
    plan = click_plan(state, layer, pairs, random.Random(seed))
    figures = matched_figures(state, layer, plan)
    builders = {"trivial": lambda: trivial_app(figures, "full"), "trivial_no_overlay": lambda: trivial_app(figures, "hidden"),
                "trivial_files": lambda: trivial_files_app(figures)}
    apps = {"studio": studio, **{name: builders[name]() for name in names if name != "studio"}}
    urls = {name: launch_on_free_port(app) for name, app in apps.items()}
    print(json.dumps({"urls": urls, "plan": plan, "display": display_side(state), "layer": layer}), flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done
    for app in apps.values():
        app.close()


# The parent: drive Chromium ---------------------------------------------------------------------------------

def sources(page, selectors: list[str]) -> list[str]:
    """The current src of each selector's <img> ('' where there is none)."""
    return page.evaluate("s => s.map(q => { const i = document.querySelector(q + ' img'); return i ? i.src : ''; })",
                         selectors)


def click_and_wait(page, target: str, fraction: tuple[float, float], watched: list[str]) -> float:
    """Click target at a fraction of its <img>; seconds from the page's click event to every watched image new."""
    old = sources(page, watched)
    image = page.locator(f"{target} img").first
    image.scroll_into_view_if_needed()  # a generate may have scrolled the page away from it
    box = image.bounding_box()
    page.mouse.click(box["x"] + fraction[0] * box["width"], box["y"] + fraction[1] * box["height"])
    page.wait_for_function(NEW_IMAGES_SHOWN, arg=[watched, old], polling="raf", timeout=60_000)
    stamps = page.evaluate("() => [window.__bench.clicked, window.__bench.shown]")
    return (stamps[1] - stamps[0]) / 1e3


def open_pages(browser, urls: dict[str, str]) -> dict:
    """One tab per app, loaded, with the click timer installed; the studio has generated its image."""
    pages = {}
    for name, url in urls.items():
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.evaluate(PAGE_TIMER)
        page.wait_for_selector(f"{APPS[name][0]} img" if name != "studio" else "#inspect-generate")
        pages[name] = page
    old = sources(pages["studio"], ["#inspect-image"])
    pages["studio"].click("#inspect-generate")
    pages["studio"].wait_for_function(NEW_IMAGES_SHOWN, arg=[["#inspect-image"], old], polling="raf")
    return pages


def clicks_in_turn(pages: dict, plan: list[list[int]], display: int) -> dict[str, list[float]]:
    """For each planned pixel: one studio click, then one click in each trivial app; seconds per app."""
    seconds = {name: [] for name in pages}
    for number, index in enumerate(plan):
        for name, page in pages.items():
            page.bring_to_front()
            target, watched = APPS[name]
            if name == "studio":
                if number and number % 5 == 0:  # back to one query (not timed), as the trivial figures are
                    old = sources(page, ["#inspect-figure"])
                    page.click("#inspect-clear")
                    page.wait_for_function(NEW_IMAGES_SHOWN, arg=[["#inspect-figure"], old], polling="raf")
                fraction = ((index[0] + 0.5) / display, (index[1] + 0.5) / display)
            else:
                fraction = (0.5, 0.5)
            seconds[name].append(click_and_wait(page, target, fraction, watched))
    return seconds


def measure_in_browser(checkpoint: Path, pairs: int, seed: int = SEED, apps: tuple[str, ...] = DEFAULT_APPS) -> dict:
    """Start the child server, time the clicks in Chromium, stop the child; summaries and ratios."""
    from playwright.sync_api import sync_playwright

    child = subprocess.Popen([sys.executable, "-m", "benchmarks.studio_browser", "--serve",
                              "--checkpoint", str(checkpoint), "--pairs", str(pairs), "--seed", str(seed),
                              "--apps", ",".join(apps)],
                             cwd=REPOSITORY, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the app server (benchmarks.studio_browser --serve) exited before serving; "
                               "its error is above")
        served = json.loads(line)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            seconds = clicks_in_turn(open_pages(browser, served["urls"]), served["plan"], served["display"])
            browser.close()
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    summaries = {name: summary(values) for name, values in seconds.items()}
    ratios = {}
    for baseline in [name for name in apps if name != "studio"]:
        per_click = [a / b for a, b in zip(seconds["studio"], seconds[baseline])]
        ratios[baseline] = {"p50": summaries["studio"]["p50"] / summaries[baseline]["p50"],
                            "per_click_median": statistics.median(per_click)}
    return {"pairs": pairs, "layer": served["layer"], "ms": summaries, "ratio_to": ratios}


def main() -> None:
    """The child's entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studio_browser",
                                     description="serve the studio and trivial apps for the browser benchmark")
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--apps", default=",".join(DEFAULT_APPS), help="the apps to serve, 'studio' first")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    serve(args.checkpoint.resolve(), args.pairs, args.seed, tuple(args.apps.split(",")))


if __name__ == "__main__":
    main()

"""The attention studio's speed: server-side click time, click-to-map in a browser, and start-up.

    python -m benchmarks.bench_studio [--checkpoint PATH] [--checkpoints DIR] [--quick]    # from the repository root

Prints a Markdown table and writes the numbers to benchmarks/results/studio.json (load average included).
The CPU is shared, so the browser target is a ratio measured in one run, clicks interleaved.

1. Server side, click -> answer ready to send (studio_server.py): the Inspect tab's image.select
   callback, then Gradio's postprocessing of its outputs, in a replayed session of random clicks
   (1-5 queries present). Target: p50 <= 15 ms, for the callback and Gradio's part together.
2. In Chromium, click -> new map on screen (studio_browser.py), against a trivial Gradio app that
   returns a figure of the same size; target studio / trivial <= 1.3x.
3. Start-up: `python launch.py --no-browser --port P --checkpoints DIR` until / and /config answer 200,
   median of 3 (target <= 10 s); a probe process splits imports from build_app.
"""
from __future__ import annotations

import argparse
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
from pathlib import Path

from benchmarks.studio_browser import measure_in_browser
from benchmarks.studio_server import measure_server_side

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
RESULTS_PATH = BENCHMARKS / "results" / "studio.json"


def default_checkpoint() -> Path:
    """The newest step_*.safetensors of faces32-sagan under checkpoints/, else under runs/."""
    for folder in (REPOSITORY / "checkpoints" / "faces32-sagan", REPOSITORY / "runs" / "faces32-sagan"):
        found = sorted(folder.glob("step_*.safetensors")) if folder.is_dir() else []
        if found:
            return found[-1]
    raise SystemExit("no checkpoints/faces32-sagan or runs/faces32-sagan step_*.safetensors; pass --checkpoint")


def load() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


# 3. Start-up ------------------------------------------------------------------------------------------------

STARTUP_PROBE = """
import json, time
started = time.perf_counter()
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
    code = STARTUP_PROBE.format(checkpoints=str(checkpoints))
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
    """The headline table, then where a server-side click goes."""
    server, browser, startup = results["server_side"], results["browser"], results["startup"]
    total, callback, post = server["total_ms"], server["callback_ms"], server["postprocess_ms"]
    ms, ratio = browser["ms"], browser["ratio_to"]
    verdict = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    lines = [
        f"{results['machine']} · {results['cpus']} CPUs · torch {results['torch']} · gradio {results['gradio']} · "
        f"checkpoint `{results['checkpoint']}` · load average (1 min) {results['load_average_start'][0]} at start, "
        f"{results['load_average_end'][0]} at end · {results['wall_s']:.0f} s"
        + (" · --quick: smoke run, not a result" if results["quick"] else ""),
        "",
        "| measurement | value | target | met |", "|---|---|---|---|",
        f"| 1. server: click -> answer ready to send, {server['clicks']} clicks, 1-5 queries: p50 / p95 "
        f"| {total['p50']:.1f} / {total['p95']:.1f} ms | p50 <= 15 ms | {verdict(total['p50'] <= 15)} |",
        f"| 1. of which the callback (InspectTab.click) p50 / p95 | {callback['p50']:.1f} / {callback['p95']:.1f} ms | - | - |",
        f"| 1. of which Gradio's postprocessing p50 / p95 | {post['p50']:.1f} / {post['p95']:.1f} ms | - | - |",
        f"| 2. browser: click -> new map on screen, studio p50 / p95 ({browser['pairs']} clicks per app, interleaved) "
        f"| {ms['studio']['p50']:.0f} / {ms['studio']['p95']:.0f} ms | - | - |",
        f"| 2. same, trivial Gradio image app (defaults) p50 / p95 | {ms['trivial']['p50']:.0f} / {ms['trivial']['p95']:.0f} ms | - | - |",
        f"| 2. same, trivial app without the loading overlay p50 / p95 "
        f"| {ms['trivial_no_overlay']['p50']:.0f} / {ms['trivial_no_overlay']['p95']:.0f} ms | - | - |",
        f"| 2. ratio studio / trivial (p50; median of per-click ratios {ratio['trivial']['per_click_median']:.2f}x) "
        f"| {ratio['trivial']['p50']:.2f}x | <= 1.3x | {verdict(ratio['trivial']['p50'] <= 1.3)} |",
        f"| 2. ratio studio / trivial without overlay (p50; per-click {ratio['trivial_no_overlay']['per_click_median']:.2f}x) "
        f"| {ratio['trivial_no_overlay']['p50']:.2f}x | - | - |",
        f"| 3. `launch.py` -> / and /config answer 200, median of {startup['runs']} "
        f"| {startup['median_s']['to_http_200_s']:.1f} s | <= 10 s | {verdict(startup['median_s']['to_http_200_s'] <= 10)} |",
    ]
    if startup["probes"]:
        median = startup["median_s"]
        lines.append(f"| 3. of which: import gradio / import sagan_viz.app / build_app "
                     f"| {median['import_gradio_s']:.1f} / {median['import_studio_s']:.1f} / {median['build_app_s']:.2f} s | - | - |")
    lines += ["", "Inside the callback (p50 per click, ms):", "", "| piece | p50 ms |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in server["callback_parts_p50_ms"].items()]
    by_count = ", ".join(f"{k}: {v:.1f}" for k, v in server["total_p50_ms_by_queries"].items() if v is not None)
    lines += ["", f"Server p50 by queries present after the click (ms): {by_count}."]
    return "\n".join(lines)


def settings(quick: bool) -> dict:
    """How much to measure; --quick is a smoke run, not a result."""
    if quick:
        return {"clicks": 10, "warm_up": 2, "pairs": 3, "startup_runs": 1, "probe": False}
    return {"clicks": 300, "warm_up": 5, "pairs": 60, "startup_runs": 3, "probe": True}


def main() -> None:
    """Parse flags, measure (start-up first, while nothing else of ours runs), print and write."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_studio", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="the 32x32 SAGAN checkpoint (default: newest faces32-sagan)")
    parser.add_argument("--checkpoints", type=Path, help="folder launch.py lists (default: the checkpoint's folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    args = parser.parse_args()
    checkpoint = (args.checkpoint or default_checkpoint()).resolve()
    checkpoints = (args.checkpoints or checkpoint.parent).resolve()
    plan = settings(args.quick)
    cache_folder = tempfile.mkdtemp(prefix="bench-studio-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = cache_folder  # Gradio's cached outputs go here, removed at the end
    environment = dict(os.environ)
    started, load_start = time.perf_counter(), load()
    try:
        startup = startup_benchmark(checkpoints, plan["startup_runs"], plan["probe"], environment)
        import gradio as gr
        import torch

        from sagan_viz.app import build_app

        torch.set_num_threads(1)
        studio = build_app(checkpoints, checkpoint=checkpoint, device="cpu")
        server_side = measure_server_side(studio, checkpoint, plan["clicks"], plan["warm_up"], random.Random(0))
        browser = measure_in_browser(checkpoint, plan["pairs"])
    finally:
        shutil.rmtree(cache_folder, ignore_errors=True)
    results = {
        "quick": args.quick,
        "checkpoint": str(checkpoint.relative_to(REPOSITORY) if checkpoint.is_relative_to(REPOSITORY) else checkpoint),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "gradio": gr.__version__, "python": platform.python_version(),
        "load_average_start": load_start, "load_average_end": load(), "wall_s": time.perf_counter() - started,
        "server_side": server_side, "browser": browser, "startup": startup,
    }
    markdown = report(results)
    if not args.quick:  # a smoke run never overwrites a result
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps({**results, "markdown": markdown}, indent=2) + "\n")
    print(markdown)


if __name__ == "__main__":
    main()

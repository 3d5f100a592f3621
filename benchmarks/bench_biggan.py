"""A BigGAN-deep-128-sized model in sagan-viz: load, generate, β, memory per generation, and the studio click.

    python -m benchmarks.bench_biggan [--folder DIR] [--quick]    # from the repository root

The model has random weights in the real file's layout and size (biggan_model.py; written once under
/tmp/bench-biggan/, outside the repository). One torch thread (OMP_NUM_THREADS=1 for every child too).
Prints a Markdown table and writes the numbers to benchmarks/results/biggan.json (the earlier runs'
headlines are kept in it). Ours and pytorch-pretrained-biggan's own code alternate, and ratios come from
one run: the CPU is shared and noisy.

1. load: sagan_viz.load_checkpoint(folder, "cpu") against BigGAN.from_pretrained(folder) (biggan_costs.py).
2. generate: LoadedModel.generate(seed, label=207, truncation=0.4) against the reference forward alone.
3. β of G.attn0 for one image: the whole (4096, 1024) matrix, and one row (biggan_costs.py).
4. memory a kept Generation holds (biggan_memory.py, in fresh processes). Target <= 20 MB.
5. the studio's click on this model: the Inspect tab's callback in-process (studio_server.py), and click ->
   figure on screen in Chromium against a trivial Gradio app (studio_browser.py). Target <= 1.2x at p50.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, here and in every child
BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
RESULTS_PATH = BENCHMARKS / "results" / "biggan.json"
MEMORY_TARGET_BYTES = 20e6
CLICK_RATIO_TARGET = 1.2
KEPT_EARLIER_RUNS = 4
# studio_browser's apps: the studio, the trivial app (Gradio encodes the returned figure: the target's
# baseline) and the same app returning PNG files written beforehand (Gradio at its leanest)
BROWSER_APPS = ("studio", "trivial", "trivial_no_overlay", "trivial_files")

from benchmarks import biggan_costs  # noqa: E402
from benchmarks.biggan_memory import MMAP_THRESHOLD  # noqa: E402
from benchmarks.biggan_model import DEFAULT_FOLDER, describe_folder, ensure_model_folder  # noqa: E402


def load() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def memory_in_child(folder: Path, count: int, fixed_threshold: bool) -> dict:
    """biggan_memory.py in a fresh process, with glibc's default or a fixed mmap threshold."""
    environment = dict(os.environ)
    environment.pop("MALLOC_MMAP_THRESHOLD_", None)
    if fixed_threshold:
        environment["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    done = subprocess.run([sys.executable, "-m", "benchmarks.biggan_memory", str(folder), str(count)],
                          cwd=REPOSITORY, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"biggan_memory.py failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def figure_sizes(model, layer: str) -> dict[str, list[int]]:
    """(width, height) of the studio's figure for 1 and 5 queries on this model, keyed "1" and "5" (as in JSON)."""
    from sagan_viz.app.views import inspect_view

    generation = model.generate(seed=7)
    pixels = [(16.0 + 20 * number, 64.0) for number in range(5)]
    return {str(count): list(inspect_view(generation, layer, pixels[:count]).figure.size) for count in (1, 5)}


def measure_studio(folder: Path, plan: dict) -> dict:
    """The Inspect tab's click: in-process (callback, Gradio's postprocessing), then in Chromium."""
    import gradio as gr

    from benchmarks.studio_browser import measure_in_browser
    from benchmarks.studio_server import measure_server_side
    from sagan_viz.app import build_app

    studio = build_app(folder.parent, checkpoint=folder, device="cpu")
    server = measure_server_side(studio, folder, plan["clicks"], plan["warm_up"], random.Random(0))
    studio.close()
    browser = measure_in_browser(folder, plan["pairs"], apps=BROWSER_APPS)
    return {"gradio": gr.__version__, "server_side": server, "browser": browser}


@contextmanager
def section(loads: dict, name: str):
    """Record the load average at the start and end of a part of the run."""
    loads[name] = {"start": load()}
    yield
    loads[name]["end"] = load()


def measure_all(folder: Path, plan: dict) -> dict:
    """Every part in turn, each with the load average around it."""
    import torch
    from pytorch_pretrained_biggan import BigGAN

    import sagan_viz

    torch.set_num_threads(1)
    parts, loads = {}, {}
    with section(loads, "load"):
        parts["load"] = biggan_costs.measure_load(folder, plan["load_rounds"])
    model = sagan_viz.load_checkpoint(folder, device="cpu")
    reference = BigGAN.from_pretrained(str(folder)).eval()
    with section(loads, "generate"):
        parts["generate"] = biggan_costs.measure_generate(model, reference, plan["generate_rounds"])
        parts["generate_profile"] = biggan_costs.profile_generate(model)
    with section(loads, "beta"):
        parts["beta"] = biggan_costs.measure_beta(model, "G.attn0", plan["beta_repeats"])
    parts["figure_pixels"] = figure_sizes(model, "G.attn0")
    model = reference = None  # the memory children and the studio load their own
    with section(loads, "memory"):
        parts["memory"] = {
            "glibc_default": memory_in_child(folder, plan["memory_generations"], fixed_threshold=False),
            "fixed_mmap_threshold": memory_in_child(folder, plan["memory_generations"], fixed_threshold=True)}
    with section(loads, "studio"):
        parts["studio"] = measure_studio(folder, plan)
    return {**parts, "load_average": loads}


def headline(results: dict) -> dict:
    """The numbers of the table, for comparing runs."""
    memory, studio = results["memory"], results["studio"]
    browser = studio["browser"]
    return {
        "load_s": results["load"]["ours"]["median_s"], "load_ratio": results["load"]["ratio"],
        "generate_s": results["generate"]["ours"]["median_s"], "generate_ratio": results["generate"]["ratio"],
        "reference_forward_s": results["generate"]["reference_forward"]["median_s"],
        "beta_whole_s": results["beta"]["whole"]["median_s"], "beta_row_s": results["beta"]["row"]["median_s"],
        "memory_counted_bytes": memory["fixed_mmap_threshold"]["counted_bytes_per_generation"],
        "memory_rss_bytes": memory["fixed_mmap_threshold"]["rss_growth_bytes_per_generation"],
        "memory_rss_default_malloc_bytes": memory["glibc_default"]["rss_growth_bytes_per_generation"],
        "click_callback_p50_ms": studio["server_side"]["callback_ms"]["p50"],
        "click_browser_p50_ms": browser["ms"]["studio"]["p50"],
        "trivial_browser_p50_ms": browser["ms"]["trivial"]["p50"],
        "click_ratio_p50": browser["ratio_to"]["trivial"]["p50"],
        "trivial_files_browser_p50_ms": browser["ms"]["trivial_files"]["p50"],
        "click_ratio_to_files_p50": browser["ratio_to"]["trivial_files"]["p50"],
        "load_average_start": results["load_average_start"], "load_average_end": results["load_average_end"],
    }


def source_commit() -> str | None:
    """The commit measured: git's HEAD here, else SAGAN_VIZ_COMMIT (set when running a copy of a commit)."""
    done = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode == 0:
        dirty = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "sagan_viz"],
                               capture_output=True, text=True).stdout.strip()
        return done.stdout.strip() + (" (sagan_viz/ modified)" if dirty else "")
    return os.environ.get("SAGAN_VIZ_COMMIT")


def settings(quick: bool) -> dict:
    """How much to measure; --quick is a smoke run, not a result."""
    if quick:
        return {"load_rounds": 1, "generate_rounds": 2, "beta_repeats": 2, "memory_generations": 3,
                "clicks": 10, "warm_up": 2, "pairs": 3}
    return {"load_rounds": 3, "generate_rounds": 7, "beta_repeats": 7, "memory_generations": 10,
            "clicks": 150, "warm_up": 5, "pairs": 60}


def main() -> None:
    """Parse flags, make or reuse the model folder, measure, print and write."""
    from benchmarks.biggan_report import report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_biggan", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="where the random model is cached")
    parser.add_argument("--quick", action="store_true", help="smoke run, about two minutes")
    args = parser.parse_args()
    folder = ensure_model_folder(args.folder.resolve())
    plan = settings(args.quick)
    cache_folder = tempfile.mkdtemp(prefix="bench-biggan-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = cache_folder  # Gradio's cached outputs go here, removed at the end
    started, load_start = time.perf_counter(), load()
    try:
        measured = measure_all(folder, plan)
    finally:
        shutil.rmtree(cache_folder, ignore_errors=True)
    import torch

    results = {
        "quick": args.quick, "commit": source_commit(), "model": describe_folder(folder), "settings": plan,
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "load_average_start": load_start, "load_average_end": load(), "wall_s": time.perf_counter() - started,
        **measured,
    }
    results["headline"] = headline(results)
    markdown = report(results, MEMORY_TARGET_BYTES, CLICK_RATIO_TARGET)
    if not args.quick:  # a smoke run never overwrites a result
        earlier = []
        if RESULTS_PATH.is_file():
            previous = json.loads(RESULTS_PATH.read_text())
            earlier = [previous["headline"], *previous.get("earlier_runs", [])][:KEPT_EARLIER_RUNS]
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps({**results, "earlier_runs": earlier, "markdown": markdown}, indent=2) + "\n")
    print(markdown)


if __name__ == "__main__":
    main()

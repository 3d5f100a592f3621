"""Time of one query's Captum attribution on this CPU (target: under 2 s).

    python -m benchmarks.bench_attribution [--checkpoint PATH] [--repeats 7] [--threads 1]   # from the repository root

Default checkpoint: the newest runs/faces32-sagan/step_*.safetensors (the bundled 32x32 model), else
the newest checkpoints/faces32-sagan/step_*.safetensors. Each case runs once to warm up, then
--repeats times on the same generation and query; the table gives the median and the range of the
wall time of the whole library call (lock, gamma override, Captum, copy to NumPy). Cases:
gradient x activation and integrated gradients, each with the learned gamma and with gamma = 0;
D's saliency and integrated gradients; and what one click in the Attribution tab costs with
"include gamma = 0" ticked (two attributions and the figure).

Threads: one by default, as in bench_attention.py (on this shared 2-core machine OpenMP threads spin
while their sibling is descheduled). Prints a Markdown table and writes benchmarks/results/attribution.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from sagan_viz import load_checkpoint
from sagan_viz.attribution import (
    INTEGRATION_STEPS,
    attribution_figure,
    discriminator_attribution,
    query_attribution,
    query_beta_row,
)

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS_PATH = REPOSITORY / "benchmarks" / "results" / "attribution.json"
TARGET_S = 2.0
SEED, QUERY_CELL = 7, (4, 8)  # the preview figure's query: an eyebrow, far from most of the image


def default_checkpoint() -> Path:
    """The newest faces32-sagan snapshot of the running training, else of the bundled checkpoints."""
    for folder in ("runs/faces32-sagan", "checkpoints/faces32-sagan"):
        found = sorted((REPOSITORY / folder).glob("step_*.safetensors"))
        if found:
            return found[-1]
    raise SystemExit("no faces32-sagan checkpoint found: pass --checkpoint PATH")


def measure(call, repeats: int) -> dict:
    """Wall seconds of call(): one warm-up, then the median and range of repeats runs."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": times}


def cases(model, generation, layer: str) -> dict:
    """Name -> zero-argument call, for every measured case."""

    def click() -> None:
        result = query_attribution(model, generation, layer, QUERY_CELL)
        alone = query_attribution(model, generation, layer, QUERY_CELL, gamma_zero=True)
        attribution_figure(generation, result, query_beta_row(generation, layer, QUERY_CELL), gamma_zero_result=alone)

    return {
        "G: gradient × activation": lambda: query_attribution(model, generation, layer, QUERY_CELL),
        "G: gradient × activation, γ = 0": lambda: query_attribution(
            model, generation, layer, QUERY_CELL, gamma_zero=True),
        f"G: integrated gradients ({INTEGRATION_STEPS} steps)": lambda: query_attribution(
            model, generation, layer, QUERY_CELL, "integrated_gradients"),
        f"G: integrated gradients ({INTEGRATION_STEPS} steps), γ = 0": lambda: query_attribution(
            model, generation, layer, QUERY_CELL, "integrated_gradients", gamma_zero=True),
        "D: saliency": lambda: discriminator_attribution(model, generation, "saliency"),
        f"D: integrated gradients ({INTEGRATION_STEPS} steps)": lambda: discriminator_attribution(
            model, generation, "integrated_gradients"),
        "tab click: grad × act. + γ = 0 + figure": click,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_attribution", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    checkpoint = options.checkpoint or default_checkpoint()
    model = load_checkpoint(checkpoint, device="cpu")
    generation = model.generate(seed=SEED)
    layer = next(name for name in model.attention_layer_names() if name.startswith("G."))
    rows = {name: measure(call, options.repeats) for name, call in cases(model, generation, layer).items()}

    lines = [
        f"| case ({checkpoint.parent.name}/{checkpoint.name}, {layer}, query {QUERY_CELL}) "
        f"| median (s) | range (s) | under {TARGET_S:.0f} s |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['median_s']:.3f} | {row['min_s']:.3f}–{row['max_s']:.3f} "
                     f"| {'yes' if row['median_s'] < TARGET_S else 'NO'} |")
    markdown = "\n".join(lines)
    print(markdown)
    results = {
        "checkpoint": str(checkpoint.resolve().relative_to(REPOSITORY)) if checkpoint.resolve().is_relative_to(
            REPOSITORY) else str(checkpoint),
        "step": model.step, "layer": layer, "seed": SEED, "query_cell": list(QUERY_CELL),
        "integration_steps": INTEGRATION_STEPS, "repeats": options.repeats, "threads": options.threads,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()), "target_s": TARGET_S, "cases": rows,
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({**results, "markdown": markdown}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten: {RESULTS_PATH.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()

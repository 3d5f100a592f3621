"""Self-attention cost on this CPU: the fast path against the inspection path.

    python -m benchmarks.bench_attention [--quick] [--threads N]    # from the repository root

Prints Markdown tables and writes them, with every number behind them, to
benchmarks/results/attention.json. Two paths are compared everywhere (see attention_layer.py):
fast (use_fused=True: the library's attend_fused, one SDPA call) and inspection (use_fused=False:
beta materialised by the naive explicit softmax). Every ratio is fast / inspection.

1. Training throughput of a 32x32 SAGAN, attention at feat16 in G and D, batch 64, with the real
   discriminator_step, generator_step and update_ema of training/loop.py on a RunState from
   new_run_state, for the project's faces32 config and the default ModelConfig(). The machine is
   shared, so after one warm-up step per path the paths run in alternating rounds of one block
   each, ordered AB then BA (linear drift cancels), until a time budget and a minimum number of
   rounds are both met. it/s per path are over all its blocks; the per-round ratios (median
   [min, max]) show how far the noise moved them.
2. One SelfAttention(64, "paper") layer, forward + backward at 64x64 = 4096 positions: SDPA
   kernel, peak memory (torch's allocation timeline, and peak RSS growth in a fresh process)
   against the target (fast <= 0.25 of naive) and the theory (3 N x N float32 matrices), and time.
3. The feat16 layer alone at D's training shape (real + fake: batch 128, N = 256), timed.

Threads: one by default. On this shared 2-core machine, 2 intra-op threads took about 7x the wall
time and 8x the CPU time of 1 thread for the same work (OpenMP threads spin at barriers while
their sibling is descheduled), so with 2 threads the timings measure the scheduler, not the paths.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.attention_layer import (
    FAST,
    INSPECTION,
    MIB,
    PATHS,
    attention_case,
    layer_timings,
    profiled_peak_bytes,
    rss_growth_per_path,
    sdpa_kernel,
    use_path,
)
from sagan_viz.attention import SelfAttention
from sagan_viz.config import ModelConfig
from training.data import load_dataset
from training.distributed import ProcessInfo
from training.loop import discriminator_step, generator_step, new_run_state, update_ema
from training.options import TrainConfig

BENCHMARKS = Path(__file__).resolve().parent
RESULTS_PATH = BENCHMARKS / "results" / "attention.json"
FACES32_CONFIG = ModelConfig(g_channels=16, d_channels=16, z_dim=64)  # the project's faces32 runs
MEMORY_TARGET = 0.25  # the fast path's peak memory, at most this fraction of the naive path's


def settings(quick: bool) -> dict:
    """How much to measure; --quick is a smoke run (batch 16, one config, no RSS check), not a result."""
    if quick:
        return {"memory_batch": 1, "memory_rounds": 2, "rss_check": False, "layer_rounds": 3,
                "train_batch": 16, "train_budget_s": 0.0, "min_rounds": 2,
                "configs": [("faces32 (16/16, z 64)", FACES32_CONFIG)]}
    return {"memory_batch": 2, "memory_rounds": 4, "rss_check": True, "layer_rounds": 6,
            "train_batch": 64, "train_budget_s": 35.0, "min_rounds": 4,
            "configs": [("faces32 (16/16, z 64)", FACES32_CONFIG), ("default ModelConfig()", ModelConfig())]}


def memory_benchmark(batch: int, rounds: int, rss_check: bool, side: int = 64, channels: int = 64) -> dict:
    """Kernel, peak memory (two ways) and time of one layer's forward + backward, both paths."""
    rss = rss_growth_per_path(batch) if rss_check else None  # first: the children would slow a timing
    layer, x, upstream = attention_case(channels, batch, side)
    timings = layer_timings(channels, batch, side, rounds)
    rows = {path: {
        "path": path,
        "sdpa_kernel": sdpa_kernel(layer, x, upstream, path),
        "profiled_peak_mib": profiled_peak_bytes(layer, x, upstream, path) / MIB,
        "rss_growth_mib": rss[path]["rss_growth_bytes"] / MIB if rss else None,
        "time_ms": 1e3 * statistics.median(timings[path]),
        "time_ms_all": [round(1e3 * seconds, 1) for seconds in timings[path]],
    } for path in PATHS}
    naive = rows[INSPECTION]
    for row in rows.values():
        row["memory_ratio_profiled"] = row["profiled_peak_mib"] / naive["profiled_peak_mib"]
        row["memory_ratio_rss"] = row["rss_growth_mib"] / naive["rss_growth_mib"] if rss else None
        row["time_ratio"] = row["time_ms"] / naive["time_ms"]
    fast = rows[FAST]
    measured_ratios = [r for r in (fast["memory_ratio_profiled"], fast["memory_ratio_rss"]) if r is not None]
    matrix_mib = batch * (side * side) ** 2 * 4 / MIB  # one N x N float32 matrix for the whole batch
    return {"channels": channels, "batch": batch, "positions": side * side, "variant": "paper",
            "rss_method": rss[INSPECTION]["method"] if rss else "skipped (--quick)",
            "memory_target_ratio": MEMORY_TARGET, "meets_memory_target": max(measured_ratios) <= MEMORY_TARGET,
            "theory_nxn_mib": matrix_mib, "theory_naive_peak_mib": 3 * matrix_mib, "rows": list(rows.values())}


def training_iteration(state, dataset, options: TrainConfig, device: torch.device) -> None:
    """One iteration as training/loop.py's _train runs it: D step(s), G step, EMA update."""
    for _ in range(options.d_steps):
        discriminator_step(state, state.generator, state.discriminator, dataset, options, device)
    generator_step(state, state.generator, state.discriminator, options, device)
    update_ema(state.generator_ema, state.generator, options.ema_decay)


def timed_block(state, dataset, options: TrainConfig, device: torch.device, path: str) -> float:
    """Seconds for one training iteration with every attention layer on the named path."""
    use_path([state.generator, state.discriminator, state.generator_ema], path)
    started = time.perf_counter()
    training_iteration(state, dataset, options, device)
    return time.perf_counter() - started


def training_benchmark(name: str, config: ModelConfig, batch: int, budget_s: float, min_rounds: int) -> dict:
    """it/s of both paths, in rounds ordered AB, BA, ..., until the budget and min_rounds are met."""
    device = torch.device("cpu")
    options = TrainConfig(out_dir=tempfile.gettempdir(), batch_size=batch, progress=False)  # nothing is written
    state = new_run_state(options, config, device, ProcessInfo())
    dataset = load_dataset("faces", config.resolution, size=512)
    for path in PATHS:  # warm-up: optimizer state, kernels, allocator
        timed_block(state, dataset, options, device, path)
    rounds, started = [], time.perf_counter()
    while len(rounds) < min_rounds or time.perf_counter() - started < budget_s:
        order = PATHS if len(rounds) % 2 == 0 else PATHS[::-1]
        rounds.append({path: timed_block(state, dataset, options, device, path) for path in order})
    totals = {path: sum(r[path] for r in rounds) for path in PATHS}
    channels = next(m for m in state.generator.modules() if isinstance(m, SelfAttention)).channels
    layer, x, upstream = attention_case(channels, batch, 16)  # G's feat16 layer at its training shape
    return {"config": name, "model": config.to_dict(), "batch": batch, "steps_per_path": len(rounds),
            "fast_kernel": sdpa_kernel(layer, x, upstream, FAST),
            "it_s": {path: len(rounds) / totals[path] for path in PATHS},
            "ratio_fast_over_inspection": totals[INSPECTION] / totals[FAST],  # it/s ratio = inverse time ratio
            "round_ratios": [round(r[INSPECTION] / r[FAST], 3) for r in rounds]}


def training_shape_layer_benchmark(channels: int, batch: int, rounds: int) -> dict:
    """Time of the feat16 attention layer alone (16x16, N = 256), both paths."""
    medians = {path: 1e3 * statistics.median(s) for path, s in layer_timings(channels, batch, 16, rounds).items()}
    return {"channels": channels, "batch": batch, "positions": 256, "time_ms": medians,
            "time_ratio_fast_over_inspection": medians[FAST] / medians[INSPECTION]}


def _spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"


def training_table(rows: list[dict]) -> str:
    """Markdown: it/s per path and the fast/inspection ratio (> 1: fast is faster)."""
    lines = ["| model config | batch | steps/path | fast kernel | fast it/s | inspection it/s "
             "| **fast / inspection** | per round: median [min, max] |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['batch']} | {r['steps_per_path']} | {r['fast_kernel']} "
                     f"| {r['it_s'][FAST]:.3f} | {r['it_s'][INSPECTION]:.3f} "
                     f"| **{r['ratio_fast_over_inspection']:.3f}** | {_spread(r['round_ratios'])} |")
    return "\n".join(lines)


def memory_table(result: dict) -> str:
    """Markdown: one layer's kernel, peak memory and time per path, against the target and the theory."""
    lines = ["| path | SDPA kernel | peak alloc MiB (profiler) | peak RSS growth MiB | **memory / naive** "
             "(profiler; RSS) | fwd+bwd ms (median) | time / naive |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        rss = "-" if r["rss_growth_mib"] is None else f"{r['rss_growth_mib']:.1f}"
        rss_ratio = "-" if r["memory_ratio_rss"] is None else f"{r['memory_ratio_rss']:.3f}"
        lines.append(f"| {r['path']} | {r['sdpa_kernel']} | {r['profiled_peak_mib']:.1f} | {rss} "
                     f"| **{r['memory_ratio_profiled']:.3f}**; {rss_ratio} "
                     f"| {r['time_ms']:.0f} | {r['time_ratio']:.2f} |")
    lines.append(f"| theory, naive | - | {result['theory_naive_peak_mib']:.0f} (3 N x N of "
                 f"{result['theory_nxn_mib']:.0f}) | - | - | - | - |")
    verdict = "meets" if result["meets_memory_target"] else "MISSES"
    return "\n".join(lines) + (f"\n\nFast path's peak memory {verdict} the target of <= "
                               f"{result['memory_target_ratio']:.2f} x naive (every measurement above).")


def layer_table(rows: list[dict]) -> str:
    """Markdown: the feat16 layer's time per path (ratio < 1: fast is faster)."""
    lines = ["| C | batch | N | fast ms | inspection ms | fast / inspection |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['channels']} | {r['batch']} | {r['positions']} | {r['time_ms'][FAST]:.1f} "
                     f"| {r['time_ms'][INSPECTION]:.1f} | {r['time_ratio_fast_over_inspection']:.2f} |")
    return "\n".join(lines)


def run(quick: bool) -> dict:
    """Every measurement, one after another, so nothing this script starts runs beside a timing."""
    plan, started, phase_seconds = settings(quick), time.perf_counter(), {}
    memory = memory_benchmark(plan["memory_batch"], plan["memory_rounds"], plan["rss_check"])
    phase_seconds["memory"] = round(time.perf_counter() - started, 1)
    layers = [training_shape_layer_benchmark(2 * config.d_channels, 2 * plan["train_batch"], plan["layer_rounds"])
              for _, config in plan["configs"]]  # D's feat16: C = 2 * d_channels, batch = real + fake
    phase_seconds["training_shape_layer"] = round(time.perf_counter() - started - sum(phase_seconds.values()), 1)
    training = []
    for name, config in plan["configs"]:
        training.append(training_benchmark(name, config, plan["train_batch"], plan["train_budget_s"],
                                           plan["min_rounds"]))
        phase_seconds[f"training {name}"] = round(time.perf_counter() - started - sum(phase_seconds.values()), 1)
    return {"quick": quick, "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
            "wall_s": time.perf_counter() - started, "phase_seconds": phase_seconds,
            "training": training, "memory": memory, "training_shape_layer": layers}


def report(results: dict) -> str:
    """The whole result as Markdown."""
    memory = results["memory"]
    return "\n\n".join([
        f"torch {results['torch']} ({results['cpu_capability']}), {results['threads']} thread(s) on {results['cpus']} "
        f"CPUs, load average at end {results['load_average_at_end'][0]:.1f}, {results['wall_s']:.0f} s"
        + (" (--quick: smoke run, batch 16, no RSS cross-check)" if results["quick"] else ""),
        "### Training throughput, 32x32 SAGAN, attention at feat16 in G and D (ratio > 1: fast is faster)",
        training_table(results["training"]),
        f"### One attention layer, forward + backward: N = {memory['positions']}, C = {memory['channels']}, "
        f"batch {memory['batch']}, {memory['variant']} variant (target: fast <= {MEMORY_TARGET} of naive memory)",
        memory_table(memory),
        "### The feat16 attention layer alone at D's training shape (ratio < 1: fast is faster)",
        layer_table(results["training_shape_layer"]),
    ])


def main() -> None:
    """Parse flags, measure, print Markdown and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_attention", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, well under a minute")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = run(args.quick)
    markdown = report(results)
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({**results, "markdown": markdown}, indent=2) + "\n")
    print(markdown)
    print(f"\nwritten: {RESULTS_PATH.relative_to(BENCHMARKS.parent)}")


if __name__ == "__main__":
    main()

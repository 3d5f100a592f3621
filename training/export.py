"""`python -m training.export`: copy chosen snapshots of a run into checkpoints/ for shipping.

Shipped snapshots drop the optimizer sidecar and may store float16 weights (loading restores
float32); history, config and everything else are kept.

Example:
    python -m training.export --run runs/faces32-sagan --out checkpoints/faces32-sagan --count 9 --half
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sagan_viz.checkpoint import CheckpointError, build_networks_from, read_checkpoint, save_checkpoint


def run_steps(run: Path) -> list[int]:
    """Steps of every snapshot in a run folder, ascending."""
    return sorted(int(path.stem.split("_")[1]) for path in run.glob("step_*.safetensors"))


def spread_steps(steps: list[int], count: int, last: int | None = None) -> list[int]:
    """count snapshots from the first to `last` (default: the newest), as evenly spaced as the run allows."""
    available = [step for step in steps if last is None or step <= last]
    if not available:
        raise ValueError("no snapshots up to that step")
    if count == 1:
        return available[-1:]
    if count >= len(available):
        return available
    first, final = available[0], available[-1]
    targets = [first + (final - first) * index / (count - 1) for index in range(count)]
    chosen = {min(available, key=lambda step: abs(step - target)) for target in targets}
    return sorted(chosen)


def export_snapshot(source: Path, target: Path, half: bool) -> Path:
    """Re-save one snapshot without its resume sidecar, optionally in float16."""
    contents = read_checkpoint(source)
    generator, generator_ema, discriminator = build_networks_from(contents)
    return save_checkpoint(
        target, config=contents.config, generator=generator, generator_ema=generator_ema,
        discriminator=discriminator, step=contents.step, wall_time_s=contents.wall_time_s,
        dataset=contents.dataset, history=contents.history, training=contents.training, half=half,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse flags and export."""
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a run folder written by training.train")
    parser.add_argument("--out", required=True, type=Path, help="where the shipped snapshots go")
    parser.add_argument("--count", type=int, default=1, help="how many snapshots, spread from first to last")
    parser.add_argument("--last", type=int, default=None, help="newest step to include (default: the newest)")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    args = parser.parse_args(argv)
    try:
        steps = spread_steps(run_steps(args.run), max(1, args.count), args.last)
        for step in steps:
            name = f"step_{step:07d}.safetensors"
            print(export_snapshot(args.run / name, args.out / name, args.half))
    except (CheckpointError, ValueError) as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())

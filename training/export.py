"""`python -m training.export`: copy chosen snapshots of a run into checkpoints/ for shipping.

Shipped snapshots drop the optimizer sidecar and may store float16 weights (loading restores
float32); history, config and everything else are kept.

`--add-digest FILE ...` rewrites checkpoints written before sagan-viz stored a digest of the tensor
data, adding only that digest (every tensor and every other metadata field stays as it was, checked).

Example:
    python -m training.export --run runs/faces32-sagan --out checkpoints/faces32-sagan --count 9 --half
    python -m training.export --add-digest checkpoints/faces32-sagan/*.safetensors
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes

from sagan_viz.atomic_files import write_atomically
from sagan_viz.checkpoint import (
    DIGEST_KEY,
    SNAPSHOT_GLOB,
    CheckpointError,
    build_networks_from,
    read_checkpoint,
    save_checkpoint,
    serialise_checkpoint,
    snapshot_name,
    snapshot_step,
)
from sagan_viz.safetensors_file import open_regular_file, read_header


def run_steps(run: Path) -> list[int]:
    """Steps of every snapshot in a run folder, ascending (files not named step_N.safetensors are skipped)."""
    return sorted(step for path in run.glob(SNAPSHOT_GLOB) if (step := snapshot_step(path.name)) is not None)


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


def _file_metadata(path: Path) -> dict[str, str]:
    with open_regular_file(path) as (stream, size):
        return read_header(path, stream, size).metadata


def _same_tensors(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """Same names, dtypes, shapes and bits (NaN-safe: compared as raw bytes)."""
    return first.keys() == second.keys() and all(
        first[key].dtype == second[key].dtype and first[key].shape == second[key].shape
        and torch.equal(first[key].reshape(-1).view(torch.uint8), second[key].reshape(-1).view(torch.uint8))
        for key in first)


def add_digest(path: Path) -> bool:
    """Rewrite an older checkpoint with the digest of its tensor data, nothing else changed; False if it had one."""
    read_checkpoint(path)  # a damaged file is refused here, not sealed as if it were sound
    metadata = _file_metadata(path)
    if DIGEST_KEY in metadata:
        return False
    before = load_safetensors_bytes(path.read_bytes())
    sealed = serialise_checkpoint(before, metadata)
    after = read_header(path, io.BytesIO(sealed), len(sealed)).metadata
    if not _same_tensors(before, load_safetensors_bytes(sealed)) or after != {**metadata, DIGEST_KEY: after[DIGEST_KEY]}:
        raise CheckpointError(f"{path}: re-serialising would change more than the digest; left as it was")
    write_atomically(path, sealed)
    read_checkpoint(path)  # and the digest now verifies
    return True


def main(argv: list[str] | None = None) -> int:
    """Parse flags and export."""
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    parser.add_argument("--add-digest", nargs="+", type=Path, metavar="FILE",
                        help="add the tensor-data digest to these older checkpoints in place (nothing else)")
    parser.add_argument("--run", type=Path, help="a run folder written by training.train")
    parser.add_argument("--out", type=Path, help="where the shipped snapshots go")
    parser.add_argument("--count", type=int, default=1, help="how many snapshots, spread from first to last")
    parser.add_argument("--last", type=int, default=None, help="newest step to include (default: the newest)")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    args = parser.parse_args(argv)
    if args.add_digest:
        try:
            for path in args.add_digest:
                print(f"{path}: {'digest added' if add_digest(path) else 'already has its digest'}")
        except CheckpointError as error:
            parser.error(str(error))
        return 0
    if args.run is None or args.out is None:
        parser.error("--run and --out are required (or --add-digest FILE ...)")
    try:
        steps = spread_steps(run_steps(args.run), max(1, args.count), args.last)
        for step in steps:
            name = snapshot_name(step)
            print(export_snapshot(args.run / name, args.out / name, args.half))
    except (CheckpointError, ValueError) as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the trainer's tests share: its command line on a tiny model, and exact comparisons of runs."""
from __future__ import annotations

from pathlib import Path

import torch

from sagan_viz.checkpoint import PARTS, SNAPSHOT_GLOB
from training.train import main

TINY_FLAGS = ["--data", "faces", "--data-size", "64", "--resolution", "32", "--g-channels", "8",
              "--d-channels", "8", "--z-dim", "16", "--batch-size", "4", "--device", "cpu", "--no-progress"]



def run(out: Path, steps: int, *flags: str) -> None:
    """The trainer's CLI, in this process."""
    assert main([*TINY_FLAGS, "--out", str(out), "--steps", str(steps), *flags]) == 0


def assert_same_networks(first, second) -> None:
    for part in PARTS:
        a, b = first.state_dicts[part], second.state_dicts[part]
        assert a.keys() == b.keys()
        different = [key for key in a if not torch.equal(a[key], b[key])]
        assert not different, f"{part} differs in {different[:3]}"


def assert_same_nested(first, second, where="") -> None:
    """Equal dicts/lists of tensors and plain values (optimizer and RNG state)."""
    if isinstance(first, torch.Tensor):
        assert torch.equal(first, second), where
    elif isinstance(first, dict):
        assert first.keys() == second.keys(), where
        for key in first:
            assert_same_nested(first[key], second[key], f"{where}.{key}")
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second), where
        for index, (a, b) in enumerate(zip(first, second)):
            assert_same_nested(a, b, f"{where}[{index}]")
    else:
        assert first == second, where


def checkpoint_names(out: Path) -> set[str]:
    """The checkpoint files in a run folder, by name."""
    return {path.name for path in out.glob(SNAPSHOT_GLOB)} if out.exists() else set()


def assert_one_line_error(stderr: str, reason: str) -> None:
    """The CLI failed with one argparse-style line holding reason, and no traceback."""
    assert "Traceback" not in stderr, stderr
    error_lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, stderr
    assert error_lines[0].startswith("python -m training.train: error:"), stderr
    assert reason in error_lines[0], stderr

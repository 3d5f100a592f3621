"""Shared fixtures: tiny checkpoints made by the real trainer, never the bundled ones."""
from __future__ import annotations

from pathlib import Path

import pytest
from sagan_viz.config import ModelConfig
from training.loop import train
from training.options import TrainConfig

TINY = dict(resolution=32, g_channels=16, d_channels=16, z_dim=16)


def train_tiny_run(out_dir: Path, steps: int = 2, **model_overrides) -> list[Path]:
    """Train a tiny SAGAN on a few procedural faces; returns its checkpoints, oldest first."""
    options = TrainConfig(
        out_dir=str(out_dir), data="faces", data_size=64, steps=steps, batch_size=4,
        checkpoint_every=1, sample_every=steps, history_every=1, progress=False,
    )
    train(options, ModelConfig(**{**TINY, **model_overrides}))
    return sorted(out_dir.glob("step_*.safetensors"))


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory) -> Path:
    """A folder like checkpoints/: a tiny SAGAN run (3 snapshots) and a tiny run without attention."""
    root = tmp_path_factory.mktemp("checkpoints")
    train_tiny_run(root / "tiny-sagan", steps=2)
    train_tiny_run(root / "tiny-noattn", steps=2, g_attention=(), d_attention=())
    for sidecar in root.rglob("*.resume.pt"):
        sidecar.unlink()  # bundled checkpoints ship without optimizer state; so do these
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_checkpoint_dir) -> Path:
    """The newest snapshot of the tiny SAGAN run."""
    return sorted((tiny_checkpoint_dir / "tiny-sagan").glob("step_*.safetensors"))[-1]

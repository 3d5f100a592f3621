"""Training options: everything about a run that is not the architecture."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sagan_viz.devices import DEVICE_CHOICES


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the architecture lives in sagan_viz.config.ModelConfig)."""

    out_dir: str
    data: str = "faces"  # "faces", a folder of images, or a CIFAR-10 python-pickle folder
    data_size: int = 20000  # images rendered for the procedural data set
    steps: int = 20000  # generator steps in total (a resumed run continues up to this)
    batch_size: int = 64  # per process
    lr_g: float = 1e-4  # TTUR (Heusel et al. 2017), as in the SAGAN paper
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    d_steps: int = 1  # discriminator steps per generator step
    ema_decay: float = 0.999
    seed: int = 0
    device: str = "auto"  # one of sagan_viz.devices.DEVICE_CHOICES
    sample_every: int = 500
    checkpoint_every: int = 1000
    history_every: int = 50
    half_checkpoints: bool = False  # float16 weights in the .safetensors file (loading restores float32)
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "batch_size", "d_steps", "sample_every", "checkpoint_every", "history_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive (got {getattr(self, name)})")
        for name in ("beta1", "beta2", "ema_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        if self.device not in DEVICE_CHOICES:
            problems.append(f"device must be one of {', '.join(DEVICE_CHOICES)} (got {self.device!r})")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict:
        """A JSON-ready dict, stored in every checkpoint for the record."""
        return dataclasses.asdict(self)

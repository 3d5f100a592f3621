"""Choosing where the networks run.

DEVICE_CHOICES is importable without torch (launch.py's --help must stay instant); torch is imported by
the functions that need it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    """True when this PyTorch has a usable Apple-silicon GPU."""
    import torch

    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(requested: str = "auto", index: int = 0) -> torch.device:
    """auto: cuda, then mps, then cpu; asking for a device that is absent raises ValueError."""
    import torch

    if requested not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {requested!r}")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU")
        return torch.device("cuda", index % torch.cuda.device_count())
    if requested == "mps" and not mps_available():
        raise ValueError("device 'mps' was asked for, but this PyTorch has no MPS device")
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    """A short human label, e.g. 'GPU (NVIDIA H100)' or 'CPU'."""
    import torch

    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "GPU (Apple MPS)"
    return "CPU"

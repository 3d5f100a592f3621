"""Model families: one module per file format, and the registry that tells a file's family.

Each family module offers claims(path) (a cheap look at names and headers), summarise(path) (what a
list shows, without loading weights) and open_model(path, device) (a LoadedModel). The first family
that claims a path reads it; one that claims it and fails says what is wrong.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

import torch

from ..checkpoint import CheckpointError
from ..devices import resolve_device
from . import biggan_deep, biggan_pytorch, heykeetae, mmgen, sagan, studiogan
from .interface import AttentionLayerInfo, LoadedModel, ModelSummary, TruncationRange

FAMILIES: tuple[ModuleType, ...] = (sagan, biggan_deep, heykeetae, biggan_pytorch, studiogan, mmgen)


def family_for(path: str | Path) -> ModuleType:
    """The family module that reads path; CheckpointError naming the path when none does."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    for family in FAMILIES:
        if family.claims(path):
            return family
    names = ", ".join(family.FAMILY for family in FAMILIES)
    raise CheckpointError(
        f"{path}: not a checkpoint sagan-viz can open (it reads: {names}; see the README's 'Models it opens')"
    )


def summarise_checkpoint(path: str | Path) -> ModelSummary:
    """What a list shows of a checkpoint, read without its weights (CheckpointError on a bad file)."""
    return family_for(path).summarise(Path(path))


def load_checkpoint(path: str | Path, device: str | torch.device = "auto") -> LoadedModel:
    """Load any supported checkpoint for generation and inspection (CheckpointError on a bad file)."""
    if not isinstance(device, torch.device):
        device = resolve_device(device)
    return family_for(path).open_model(Path(path), device)


__all__ = ["AttentionLayerInfo", "FAMILIES", "LoadedModel", "ModelSummary", "TruncationRange", "family_for",
           "load_checkpoint", "summarise_checkpoint"]

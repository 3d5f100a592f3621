"""Reading other projects' PyTorch files safely, and the spectral-norm folding they all need.

Every .pth/.pt/.bin goes through read_torch_file: torch.load(weights_only=True) only, so a pickle
cannot run code; mmap=True where the file allows, so looking at key names reads no tensor data.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import CheckpointError

DATA_PARALLEL_PREFIX = "module."  # what torch.nn.DataParallel / DDP put in front of every key


def read_torch_file(path: Path, mmap: bool = True) -> object:
    """The object in a PyTorch file, loaded weights-only; CheckpointError naming the file otherwise."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as error:
            if mmap and "mmap" in str(error):  # legacy (pre-1.6, non-zip) files cannot be memory-mapped
                return torch.load(path, map_location="cpu", weights_only=True)
            raise
    except Exception as error:  # truncated zip, foreign pickle, wrong magic: all mean a file we must not read
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: not a weights-only PyTorch file ({type(error).__name__}: {reason})") from None


def tensor_dict(value: object, path: Path, what: str) -> dict[str, torch.Tensor]:
    """value as a {name: tensor} dict with the DataParallel prefix removed; CheckpointError otherwise."""
    if not isinstance(value, dict) or not value:
        raise CheckpointError(f"{path}: {what} is not a state dict (a {type(value).__name__})")
    state = {}
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{path}: {what} holds {key!r}, which is not a named tensor")
        state[key.removeprefix(DATA_PARALLEL_PREFIX)] = tensor
    return state


def spectral_sigma(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sigma = u^T W_mat v with W_mat = weight.reshape(out, -1): torch's (and most peers') eval-mode estimate."""
    return torch.dot(u, torch.mv(weight.reshape(weight.shape[0], -1), v))


def fold_spectral_norm(state: dict[str, torch.Tensor], path: Path, original: str = "weight_orig",
                       u_name: str = "weight_u", v_name: str = "weight_v") -> dict[str, torch.Tensor]:
    """Replace each (original, u, v) triple by weight = original / sigma; CheckpointError for a useless sigma."""
    folded = {key: t for key, t in state.items() if not key.endswith((original, u_name, v_name))}
    for prefix in [key[: -len(original)] for key in state if key.endswith(original)]:
        try:
            weight, u, v = (state[prefix + name].float() for name in (original, u_name, v_name))
        except KeyError as error:
            raise CheckpointError(f"{path}: {prefix}{original} has no {error.args[0]!r} beside it") from None
        sigma = spectral_sigma(weight, u, v)
        if not torch.isfinite(sigma) or sigma <= 0:  # trained u, v give sigma > 0: these are not its own
            raise CheckpointError(f"{path}: {prefix}{u_name}/{v_name} give sigma {sigma.item():.3g} for this weight")
        folded[prefix + "weight"] = weight / sigma
    return folded

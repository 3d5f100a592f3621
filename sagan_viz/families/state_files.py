"""Reading other projects' PyTorch files safely, and the spectral-norm folding they all need.

Every .pth/.pt/.bin goes through read_torch_file: torch.load(weights_only=True) only, so a pickle
cannot run code; mmap=True where the file allows, so looking at key names reads no tensor data.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

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


def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], path: Path, what: str,
                     optional: dict[str, tuple[int, ...]] | None = None, values: bool = True) -> dict[str, torch.Tensor]:
    """state's tensors of expected (and optional) keys as float32, after checking names, shapes and values.

    CheckpointError "<path>: looks like <what>, but <what is wrong>" otherwise. values=False checks names and
    shapes only (no tensor data is read, for memory-mapped summaries) and returns {}.
    """
    optional = optional or {}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - set(optional))
    if missing or unexpected:
        raise CheckpointError(f"{path}: looks like {what}, but its keys do not fit: missing {missing[:4]}"
                              f"{' ...' * (len(missing) > 4)}, unexpected {unexpected[:4]}"
                              f"{' ...' * (len(unexpected) > 4)}")
    checked = {}
    for key in [key for key in state if key in expected or key in optional]:
        tensor, shape = state[key], expected.get(key, optional.get(key))
        if tensor.layout != torch.strided or not (tensor.is_floating_point() or key.endswith("num_batches_tracked")):
            raise CheckpointError(f"{path}: looks like {what}, but {key} is not a dense floating-point tensor")
        if tuple(tensor.shape) != shape:
            raise CheckpointError(f"{path}: looks like {what}, but {key} has shape {tuple(tensor.shape)}, "
                                  f"where the other weights imply {shape}")
        if not values:
            continue
        tensor = tensor.to(torch.float32).contiguous()
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: looks like {what}, but {key} holds NaN or infinite values")
        if key.endswith(("running_var", "stored_var")) and (tensor < 0).any():
            raise CheckpointError(f"{path}: looks like {what}, but {key} holds negative variances")
        checked[key] = tensor
    return checked


def state_keys(path: Path) -> list[str]:
    """The key names of a .pth/.pt state dict, memory-mapped (no tensor data read); [] for anything else."""
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; claims() must stay quiet
            warnings.simplefilter("ignore")
            value = read_torch_file(path, mmap=True)
    except CheckpointError:
        return []
    return [key for key in value if isinstance(key, str)] if isinstance(value, dict) else []


def read_state_dict(path: Path, what: str, mmap: bool) -> dict[str, torch.Tensor]:
    """The file's {name: tensor} (DataParallel prefix removed); CheckpointError "<path>: looks like <what>, but ..."."""
    try:
        return tensor_dict(read_torch_file(path, mmap=mmap), path, "the file")
    except CheckpointError as error:
        raise CheckpointError(f"{path}: looks like {what}, but {str(error).removeprefix(f'{path}: ')}") from None


def build(network: nn.Module, state: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    """network with state loaded strictly, float32, eval mode, no gradients."""
    network.load_state_dict(state, strict=True)
    return network.requires_grad_(False).to(device=device, dtype=torch.float32).eval()

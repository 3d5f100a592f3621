"""Reading other projects' PyTorch files safely, and the spectral-norm folding they all need.

Every .pth/.pt/.bin goes through read_torch_file: torch.load(weights_only=True) only, so a pickle
cannot run code; mmap=True where the file allows, so looking at key names reads no tensor data.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import CheckpointError

DATA_PARALLEL_PREFIX = "module."  # what torch.nn.DataParallel / DDP put in front of every key
# numpy scalars some peers pickle beside their weights (StudioGAN: best_fid, a numpy float64), under numpy 1's and 2's names; a
# scalar is rebuilt from a dtype and bytes, nothing runs. Every other global stays refused.
_SCALAR = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
_DTYPES = [getattr(np.dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType")
           ] if hasattr(np, "dtypes") else []  # numpy >= 1.25 builds a dtype through its class
NUMPY_SCALARS = [_SCALAR, (_SCALAR, "numpy.core.multiarray.scalar"), (_SCALAR, "numpy._core.multiarray.scalar"),
                 np.dtype, *_DTYPES]


def numpy_scalars_allowed():
    """A context in which torch's weights-only loader also rebuilds numpy scalars (torch >= 2.6)."""
    allow = getattr(torch.serialization, "safe_globals", None)
    return contextlib.nullcontext() if allow is None else allow(NUMPY_SCALARS)


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


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN and no infinity in tensor; min and max carry both, at a sixth of isfinite().all()'s cost."""
    if tensor.numel() == 0:
        return True
    low, high = tensor.aminmax()
    return bool(torch.isfinite(low) and torch.isfinite(high))


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
        if not all_finite(tensor):
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


def check_state_values(state: dict[str, torch.Tensor], fail) -> dict[str, torch.Tensor]:
    """Float32 copies of a state dict's weights after checking them; fail(reason) makes the error to raise.

    Copies, so a network built from them keeps no tie to a memory-mapped file. Dense floating-point
    tensors, finite, no negative variances; num_batches_tracked stays an integer;
    each weight_orig has a u over its rows and a v over the rest, as torch's spectral_norm stores them.
    """
    checked = {}
    for key, tensor in state.items():
        integer = key.endswith("num_batches_tracked")
        if tensor.layout != torch.strided or tensor.is_floating_point() == integer or tensor.is_complex():
            raise fail(f"{key} is not a dense {'integer' if integer else 'floating-point'} tensor")
        if not integer and not all_finite(tensor):
            raise fail(f"{key} holds NaN or infinite values")
        if key.endswith("running_var") and (tensor < 0).any():
            raise fail(f"{key} holds negative variances")
        checked[key] = tensor.clone() if integer else tensor.to(torch.float32, copy=True)  # off the mmap'd file
    for prefix in [key.removesuffix("weight_orig") for key in state if key.endswith("weight_orig")]:
        rows, rest = checked[prefix + "weight_orig"].reshape(checked[prefix + "weight_orig"].shape[0], -1).shape
        u, v = checked.get(prefix + "weight_u"), checked.get(prefix + "weight_v")
        if u is None or v is None or u.shape != (rows,) or v.shape != (rest,):
            raise fail(f"{prefix}weight_orig has no u of ({rows},) and v of ({rest},) beside it "
                       f"(found {None if u is None else tuple(u.shape)} and {None if v is None else tuple(v.shape)})")
    return checked

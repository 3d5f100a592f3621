"""The one reader and writer of checkpoints: a single .safetensors file per snapshot.

A file holds G, EMA-G and D weights (keys prefixed "G.", "G_ema.", "D.") and JSON
metadata: the format tag and version, the ModelConfig, and the training record
(data set, step, wall time, history). Loading never executes code from the file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .config import ConfigError, ModelConfig
from .networks import Discriminator, Generator

FORMAT_TAG = "sagan-viz-checkpoint"
FORMAT_VERSION = 1
PARTS = ("G", "G_ema", "D")


class CheckpointError(Exception):
    """A file that cannot be loaded as a sagan-viz checkpoint; the message names it and why."""


@dataclass
class CheckpointContents:
    """What a checkpoint file holds, validated but not yet built into networks."""

    path: Path
    config: ModelConfig
    step: int
    wall_time_s: float
    dataset: str
    history: dict
    training: dict = field(default_factory=dict)  # the TrainConfig used, for the record
    state_dicts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # part -> state dict


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path so that a crash at any moment leaves either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def _storable(state_dict: dict[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    tensors = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu")
        if half and tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        tensors[key] = tensor.contiguous().clone()  # safetensors refuses shared storage
    return tensors


def save_checkpoint(
    path: str | Path,
    *,
    config: ModelConfig,
    generator: Generator,
    generator_ema: Generator,
    discriminator: Discriminator,
    step: int,
    wall_time_s: float,
    dataset: str,
    history: dict,
    training: dict | None = None,
    half: bool = False,
) -> Path:
    """Write one snapshot atomically; half=True stores floats as float16 (loading restores float32)."""
    tensors: dict[str, torch.Tensor] = {}
    for part, module in zip(PARTS, (generator, generator_ema, discriminator)):
        for key, tensor in _storable(module.state_dict(), half).items():
            tensors[f"{part}.{key}"] = tensor
    metadata = {
        "format": FORMAT_TAG,
        "version": str(FORMAT_VERSION),
        "model_config": json.dumps(config.to_dict()),
        "step": str(int(step)),
        "wall_time_s": repr(float(wall_time_s)),
        "dataset": dataset,
        "history": json.dumps(history),
        "training": json.dumps(training or {}),
    }
    path = Path(path)
    write_atomically(path, save_safetensors_bytes(tensors, metadata=metadata))
    return path


def _read_header_metadata(path: Path, raw: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header.
    if len(raw) < 8:
        raise CheckpointError(f"{path}: file is too short ({len(raw)} bytes) to be a checkpoint")
    header_length = int.from_bytes(raw[:8], "little")
    if header_length <= 0 or 8 + header_length > len(raw):
        raise CheckpointError(f"{path}: not a safetensors file, or truncated (header length {header_length})")
    try:
        header = json.loads(raw[8 : 8 + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path}: a safetensors file, but not a sagan-viz checkpoint (no '{FORMAT_TAG}' tag)")
    return metadata


def _parse_metadata(path: Path, metadata: dict[str, str]) -> dict:
    version = metadata.get("version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {version}, this sagan-viz reads {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_dict(json.loads(metadata["model_config"]))
        return dict(
            config=config,
            step=int(metadata["step"]),
            wall_time_s=float(metadata["wall_time_s"]),
            dataset=metadata["dataset"],
            history=json.loads(metadata["history"]),
            training=json.loads(metadata.get("training", "{}")),
        )
    except ConfigError as error:
        raise CheckpointError(f"{path}: its model config is invalid: {error}") from None
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: damaged metadata ({type(error).__name__}: {error})") from None


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read and validate a checkpoint; any problem raises CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    raw = path.read_bytes()
    fields = _parse_metadata(path, _read_header_metadata(path, raw))
    try:
        tensors = load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: truncated or corrupt tensor data ({error})") from None
    state_dicts: dict[str, dict[str, torch.Tensor]] = {part: {} for part in PARTS}
    for key, tensor in tensors.items():
        part, _, name = key.partition(".")
        if part not in state_dicts:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} (not part of G, G_ema or D)")
        state_dicts[part][name] = tensor
    contents = CheckpointContents(path=path, state_dicts=state_dicts, **fields)
    _check_architecture(contents)
    return contents


def read_checkpoint_summary(path: str | Path) -> CheckpointContents:
    """Config, step and history of a checkpoint from its header alone (no tensors read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with path.open("rb") as stream:
        prefix = stream.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
        if length > path.stat().st_size:
            raise CheckpointError(f"{path}: not a safetensors file, or truncated (header length {length})")
        raw = prefix + stream.read(length)
    return CheckpointContents(path=path, **_parse_metadata(path, _read_header_metadata(path, raw)))


def _check_part(path: Path, part: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: {part} weights do not match the architecture in its config "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for key, tensor in expected.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: {part}.{key} has shape {tuple(found[key].shape)}, "
                f"the config's architecture needs {tuple(tensor.shape)}"
            )
        if found[key].is_floating_point() != tensor.is_floating_point():  # e.g. float bits read as int32
            raise CheckpointError(f"{path}: {part}.{key} is stored as {found[key].dtype}, expected {tensor.dtype}")
        if not torch.isfinite(found[key].float()).all():
            raise CheckpointError(f"{path}: {part}.{key} holds NaN or infinite values")


def _check_architecture(contents: CheckpointContents) -> None:
    # Built on the CPU, not the meta device: there, spectral norm's power iterations run through
    # Python reference kernels and cost ~2 s of CPU per read even for a tiny model (~0.05 s here).
    with torch.random.fork_rng(devices=[]):  # the random init must not move the caller's RNG
        generator, discriminator = Generator(contents.config), Discriminator(contents.config)
    for part, module in (("G", generator), ("G_ema", generator), ("D", discriminator)):
        _check_part(contents.path, part, module.state_dict(), contents.state_dicts[part])


def _restore(module: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    reference = module.state_dict()
    # float16 snapshots come back as float32; integer buffers keep their dtype.
    module.load_state_dict({key: value.to(reference[key].dtype) for key, value in state_dict.items()})


def build_networks_from(
    contents: CheckpointContents, device: str | torch.device = "cpu"
) -> tuple[Generator, Generator, Discriminator]:
    """(G, G_ema, D) in eval mode, float32, on device, with the checkpoint's weights."""
    networks = (Generator(contents.config), Generator(contents.config), Discriminator(contents.config))
    for part, module in zip(PARTS, networks):
        _restore(module, contents.state_dicts[part])
        module.to(device).eval().requires_grad_(False)
    return networks


def resume_state_path(checkpoint_path: str | Path) -> Path:
    """Sidecar next to a checkpoint that holds optimizer and RNG state for --resume."""
    checkpoint_path = Path(checkpoint_path)
    return checkpoint_path.with_name(checkpoint_path.stem + ".resume.pt")


def save_resume_state(checkpoint_path: str | Path, state: dict) -> Path:
    """Write the resume sidecar atomically (tensors, numbers, strings, lists, dicts only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    target = resume_state_path(checkpoint_path)
    write_atomically(target, buffer.getvalue())
    return target


def load_resume_state(checkpoint_path: str | Path) -> dict:
    """Read the resume sidecar; weights_only=True so that no code in it can run."""
    target = resume_state_path(checkpoint_path)
    if not target.is_file():
        raise CheckpointError(f"{target}: missing resume state for {Path(checkpoint_path).name}")
    try:
        return torch.load(target, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"{target}: unreadable resume state ({type(error).__name__}: {error})") from None

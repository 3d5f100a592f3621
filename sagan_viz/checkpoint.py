"""The one reader and writer of checkpoints: a single .safetensors file per snapshot.

A file holds G, EMA-G and D weights (keys prefixed "G.", "G_ema.", "D.") and JSON
metadata: the format tag and version, the ModelConfig, the training record (data set,
step, wall time, history) and the SHA-256 of the tensor data. Loading never executes
code from the file, and checks it in the order that costs least: the file itself, the
header and config, every tensor's dtype and shape against the config, and only then the
tensor data (digest, then values that would make an image non-finite).
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors_bytes

from .atomic_files import write_atomically
from .config import ConfigError, ModelConfig
from .history import TrainingHistory
from .networks import Discriminator, Generator
from .safetensors_file import (
    CheckpointError,
    SafetensorsHeader,
    data_digest,
    open_regular_file,
    parse_json,
    read_header,
    read_tensors,
)
from .state_layout import SPECTRAL_U, SPECTRAL_V, SPECTRAL_WEIGHT, TensorSpec, checkpoint_layout, element_count

FORMAT_TAG = "sagan-viz-checkpoint"
FORMAT_VERSION = 1  # the digest is an optional metadata field: files without one stay version 1
PARTS = ("G", "G_ema", "D")
DIGEST_KEY = "data_sha256"  # SHA-256 of the data section (every tensor's bytes, in file order)
FLOAT_DTYPES = ("F32", "F16", "BF16")  # what this project writes (F32, F16) and what a converter may make
COUNT_DTYPE = "I64"  # BatchNorm's num_batches_tracked
# About 2.5x BigGAN's 128x128 G and D: 1.2 GB as float32. A config asking for more is refused before
# any tensor is read; raise this to load bigger models.
MAX_ELEMENTS = 300_000_000
# Adam moves a weight by about lr per step, so from an O(1) init a weight needs over 10^7 steps at lr 1e-3
# to pass 1e4; trained checkpoints hold |w| < 10. Larger values are damage (3e38 overflows the first
# product), or float16 bits read as bfloat16. Running variances are squares of activations: bound 1e8.
MAX_ABS_VALUE = 1e4
# torch's spectral norm keeps u and v unit vectors (float16 storage changes the norm by ~2e-4).
UNIT_NORM_TOLERANCE = 0.02
# For unit u, v the estimate sigma = u^T W v is at most W's spectral norm, which bounds every |W_ij|; with
# u, v converged (one power iteration per step) max|W| / sigma stays below 1 (bundled files: < 0.5).
MAX_WEIGHT_OVER_SIGMA = 10.0


SNAPSHOT_GLOB = "step_*.safetensors"  # the snapshots of a run folder (and files merely named like them)
SNAPSHOT_NAME = re.compile(r"step_(\d+)\.safetensors")  # what snapshot_name writes
SNAPSHOT_FILE_NAME = re.compile(r"step_\d+\.(safetensors|resume\.pt)")  # a snapshot or its resume sidecar


def snapshot_stem(step: int) -> str:
    """'step_0001250': how a run names the files of a step (checkpoint, sidecar, sample grid)."""
    return f"step_{int(step):07d}"


def snapshot_name(step: int) -> str:
    """'step_0001250.safetensors': the checkpoint file of a step in a run folder."""
    return f"{snapshot_stem(step)}.safetensors"


def snapshot_step(name: str) -> int | None:
    """The step of a file named step_N.safetensors (any number of digits), else None."""
    match = SNAPSHOT_NAME.fullmatch(name)
    return None if match is None else int(match[1])


@dataclass
class CheckpointContents:
    """What a checkpoint file holds, validated but not yet built into networks."""

    path: Path
    config: ModelConfig
    step: int
    wall_time_s: float
    dataset: str
    history: TrainingHistory
    training: dict = field(default_factory=dict)  # the TrainConfig used, for the record
    state_dicts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # part -> state dict
    notes: list[str] = field(default_factory=list)  # what a caller may show, e.g. "no digest: damage undetectable"


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
    history: TrainingHistory | dict,
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
        "history": json.dumps((history if isinstance(history, TrainingHistory) else TrainingHistory.from_dict(history)).to_dict()),
        "training": json.dumps(training or {}),
    }
    path = Path(path)
    write_atomically(path, serialise_checkpoint(tensors, metadata))
    return path


def serialise_checkpoint(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes of tensors and metadata, with the SHA-256 of the tensor data added to the metadata."""
    metadata = {key: value for key, value in metadata.items() if key != DIGEST_KEY}
    digest = data_digest(save_safetensors_bytes(tensors, metadata=metadata))  # the data section ignores metadata
    sealed = save_safetensors_bytes(tensors, metadata={**metadata, DIGEST_KEY: digest})
    if data_digest(sealed) != digest:
        raise RuntimeError("safetensors laid out the same tensors in two ways; the digest would not match")
    return sealed


def _parse_metadata(path: Path, metadata: dict[str, str]) -> dict:
    if metadata.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path}: a safetensors file, but not a sagan-viz checkpoint (no '{FORMAT_TAG}' tag)")
    version = metadata.get("version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {version}, this sagan-viz reads {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_dict(parse_json(metadata["model_config"]))
        fields = dict(
            config=config,
            step=parse_json(metadata["step"]),
            wall_time_s=float(metadata["wall_time_s"]),
            dataset=metadata["dataset"],
            history=parse_json(metadata["history"], allow_nan=True),  # a diverged run's losses are NaN
            training=parse_json(metadata.get("training", "{}")),
        )
        if not isinstance(fields["step"], int) or isinstance(fields["step"], bool):
            raise ValueError(f"step {metadata['step']!r} is not an integer")
        if fields["step"] < 0:
            raise ValueError(f"step {fields['step']} is negative")
        if not 0 <= fields["wall_time_s"] < math.inf:
            raise ValueError(f"wall time {fields['wall_time_s']} s is impossible")
        fields["history"] = TrainingHistory.from_dict(fields["history"])
        if not isinstance(fields["training"], dict):
            raise ValueError("the training record is not a JSON object")
        digest = metadata.get(DIGEST_KEY)
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"{DIGEST_KEY} is not a SHA-256 digest")
        return fields
    except ConfigError as error:
        raise CheckpointError(f"{path}: its model config is invalid: {error}") from None
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: damaged metadata ({type(error).__name__}: {str(error)[:200]})") from None


def _listing(keys: list[str]) -> str:
    return f"{keys[:3]}{'...' if len(keys) > 3 else ''}"


def _check_tensor_table(path: Path, config: ModelConfig, header: SafetensorsHeader) -> None:
    """Every tensor's name, dtype and shape against what the config implies; no tensor data is read."""
    layout = checkpoint_layout(config)
    if element_count(layout) > MAX_ELEMENTS:
        raise CheckpointError(f"{path}: its config describes {element_count(layout):,} weights, more than the "
                              f"{MAX_ELEMENTS:,} sagan-viz loads")
    found: dict[str, dict[str, str]] = {part: {} for part in PARTS}
    for name in header.tensors:
        part, _, key = name.partition(".")
        if part not in found:
            raise CheckpointError(f"{path}: unexpected tensor {name!r} (not part of G, G_ema or D)")
        found[part][key] = name
    float_dtypes = sorted({entry.dtype for entry in header.tensors.values() if entry.dtype in FLOAT_DTYPES})
    if len(float_dtypes) > 1:  # this project writes one float dtype per file; a relabelled tensor shows here
        raise CheckpointError(f"{path}: its float tensors mix {' and '.join(float_dtypes)}; a checkpoint holds one "
                              "float dtype: damaged, or some tensors are labelled with another dtype")
    for part in PARTS:
        expected: dict[str, TensorSpec] = layout[part]
        missing, unexpected = sorted(set(expected) - set(found[part])), sorted(set(found[part]) - set(expected))
        if missing or unexpected:
            raise CheckpointError(f"{path}: {part} weights do not match the architecture in its config "
                                  f"(missing {_listing(missing)}, unexpected {_listing(unexpected)})")
        for key, spec in expected.items():
            entry = header.tensors[found[part][key]]
            if entry.shape != spec.shape:
                raise CheckpointError(f"{path}: {entry.name} has shape {entry.shape}, "
                                      f"the config's architecture needs {spec.shape}")
            if entry.dtype not in (FLOAT_DTYPES if spec.floating else (COUNT_DTYPE,)):
                wanted = "float32, float16 or bfloat16" if spec.floating else "torch.int64"
                raise CheckpointError(f"{path}: {entry.name} is stored as {entry.torch_dtype}, expected {wanted}")


def _read_checked_header(path: Path, stream, file_size: int) -> tuple[SafetensorsHeader, dict]:
    header = read_header(path, stream, file_size)
    fields = _parse_metadata(path, header.metadata)
    _check_tensor_table(path, fields["config"], header)
    return header, fields


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read and validate a checkpoint; any problem raises CheckpointError naming the file."""
    path = Path(path)
    with open_regular_file(path) as (stream, file_size):
        header, fields = _read_checked_header(path, stream, file_size)
        tensors, digest = read_tensors(path, stream, header)
    notes = []
    if DIGEST_KEY not in header.metadata:
        notes.append(f"{path.name} carries no digest of its tensor data (written before sagan-viz stored one), "
                     "so damage to its weights cannot be detected")
    elif digest != header.metadata[DIGEST_KEY]:
        raise CheckpointError(f"{path}: tensor data does not match its digest: the file is damaged")
    state_dicts: dict[str, dict[str, torch.Tensor]] = {part: {} for part in PARTS}
    for name, tensor in tensors.items():
        part, _, key = name.partition(".")
        state_dicts[part][key] = tensor
    for part in PARTS:
        _check_values(path, part, state_dicts[part])
    return CheckpointContents(path=path, state_dicts=state_dicts, notes=notes, **fields)


def read_checkpoint_summary(path: str | Path) -> CheckpointContents:
    """Config, step and history of a checkpoint from its header alone (tensor table checked, no data read)."""
    path = Path(path)
    with open_regular_file(path) as (stream, file_size):
        _, fields = _read_checked_header(path, stream, file_size)
    return CheckpointContents(path=path, **fields)


def _check_values(path: Path, part: str, state: dict[str, torch.Tensor]) -> None:
    """Refuse values that a trained network cannot hold and that would make its images non-finite."""
    for key, tensor in state.items():
        name = f"{part}.{key}"
        if not tensor.is_floating_point():
            if (tensor < 0).any():
                raise CheckpointError(f"{path}: {name} holds a negative count")
            continue
        values = tensor.float()
        if not torch.isfinite(values).all():
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
        variance = key.endswith("running_var")
        if variance and (values < 0).any():
            raise CheckpointError(f"{path}: {name} holds negative variances")
        largest, limit = (values.abs().max().item() if values.numel() else 0.0), MAX_ABS_VALUE ** (2 if variance else 1)
        if largest > limit:
            raise CheckpointError(f"{path}: {name} holds {largest:.3g}, beyond the {limit:.0e} a trained network "
                                  "reaches: damaged weights, or data stored under another dtype")
        if key.endswith((SPECTRAL_U, SPECTRAL_V)) and abs(values.norm().item() - 1) > UNIT_NORM_TOLERANCE:
            raise CheckpointError(f"{path}: {name} has norm {values.norm().item():.3g}, but spectral norm keeps it "
                                  "a unit vector: damaged, or data stored under another dtype")
    for key in (key for key in state if key.endswith(SPECTRAL_WEIGHT)):
        _check_spectral_estimate(path, f"{part}.{key[: -len(SPECTRAL_WEIGHT)]}", state, key)


def _check_spectral_estimate(path: Path, layer: str, state: dict[str, torch.Tensor], weight_key: str) -> None:
    """sigma = u^T W v must be positive and near W's spectral norm, or W / sigma is infinite or huge."""
    prefix = weight_key[: -len(SPECTRAL_WEIGHT)]
    weight, u, v = (state[prefix + suffix].float() for suffix in (SPECTRAL_WEIGHT, SPECTRAL_U, SPECTRAL_V))
    sigma = torch.dot(u, torch.mv(weight.reshape(weight.shape[0], -1), v)).item()
    largest = weight.abs().max().item() if weight.numel() else 0.0
    if not sigma > 0 or largest > MAX_WEIGHT_OVER_SIGMA * sigma:
        problem = "the weight is all zero" if largest == 0 else "its u, v do not belong to this weight"
        raise CheckpointError(f"{path}: {layer}: spectral norm's sigma = u^T W v is {sigma:.3g} with max |W| "
                              f"{largest:.3g}: {problem}, so the normalised weight would be infinite or huge")


def _restore(module: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    reference = module.state_dict()
    # float16 snapshots come back as float32; integer buffers keep their dtype.
    module.load_state_dict({key: value.to(reference[key].dtype) for key, value in state_dict.items()})


@torch.no_grad()
def _check_outputs_finite(path: Path, networks: tuple[Generator, Generator, Discriminator]) -> None:
    """Run each network once on a fixed z: a combination of weights the value checks missed shows up here."""
    generator, generator_ema, discriminator = networks
    config, device = generator.config, next(generator.parameters()).device
    z = torch.randn(1, config.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.zeros(1, dtype=torch.long, device=device) if config.conditional else None
    for part, module in (("G", generator), ("G_ema", generator_ema)):
        images = module(z, labels)
        if not torch.isfinite(images).all():
            raise CheckpointError(f"{path}: its {part} produces non-finite values (NaN/inf): the weights are damaged")
    if not torch.isfinite(discriminator(images, labels)).all():
        raise CheckpointError(f"{path}: its D produces non-finite values (NaN/inf): the weights are damaged")


def build_networks_from(
    contents: CheckpointContents, device: str | torch.device = "cpu"
) -> tuple[Generator, Generator, Discriminator]:
    """(G, G_ema, D) in eval mode, float32, on device, with the checkpoint's weights; CheckpointError if non-finite."""
    networks = (Generator(contents.config), Generator(contents.config), Discriminator(contents.config))
    for part, module in zip(PARTS, networks):
        _restore(module, contents.state_dicts[part])
        module.to(device).eval().requires_grad_(False)
    _check_outputs_finite(contents.path, networks)
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
    if not target.exists():
        raise CheckpointError(f"{target}: missing resume state for {Path(checkpoint_path).name}")
    with open_regular_file(target) as (stream, _):  # no FIFO, device or /proc file
        try:
            return torch.load(stream, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a damaged file
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(f"{target}: unreadable resume state ({type(error).__name__}: {reason})") from None

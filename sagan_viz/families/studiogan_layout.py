"""PyTorch-StudioGAN's file layout: reading its saves, their key names, and the architecture their shapes imply.

StudioGAN files carry no config, so the generator's and discriminator's architecture (backbone, widths,
attention positions, conditioning) is read from the state dict's shapes, with the tables of
src/models/resnet.py and big_resnet.py. Spectral norm is folded as StudioGAN's own sampling computes it:
GeneratorController puts Conv/Linear/Embedding in train mode, so its first forward after loading runs one
power iteration from the stored u (eps 1e-6) and divides by the sigma that gives.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import CheckpointError
from .state_files import check_state_values, fold_spectral_norm, numpy_scalars_allowed, read_torch_file, tensor_dict

SN_EPS = 1e-6  # utils/ops.py: every snconv2d / snlinear / sn_embedding uses eps=1e-6
RESOLUTIONS = (32, 64, 128, 256, 512)  # the keys of StudioGAN's channel tables
D_DOWNSAMPLE = {32: (True, True, False, False), 64: (True,) * 4 + (False,), 128: (True,) * 5 + (False,),
                256: (True,) * 6 + (False,), 512: (True,) * 7 + (False,)}  # models/resnet.py, d_down
MAX_CHANNELS, MAX_CLASSES, MAX_Z = 65536, 100_000, 4096
# StudioGAN's SelfAttention names -> SelfAttention's: theta is the query g, phi the key f, g the value h
ATTENTION_NAMES = {"conv1x1_theta": "g", "conv1x1_phi": "f", "conv1x1_g": "h", "conv1x1_attn": "v", "sigma": "gamma"}
def refuse(path: Path, what: str, reason: str) -> CheckpointError:
    """The error for a file that looks like a StudioGAN checkpoint but does not fit."""
    return CheckpointError(f"{path}: looks like a StudioGAN {what} checkpoint, but {reason}")


def read_studiogan_file(path: Path, what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(the file's dict, its state_dict with our key names), read weights-only and memory-mapped; else CheckpointError."""
    try:
        with numpy_scalars_allowed():
            loaded = read_torch_file(path)
    except CheckpointError as error:  # truncated, not a zip or pickle, or a pickle that would run code
        raise refuse(path, what, "it is " + str(error).removeprefix(f"{path}: ")) from None
    if not isinstance(loaded, dict) or "state_dict" not in loaded:
        found = sorted(map(str, loaded))[:5] if isinstance(loaded, dict) else f"a {type(loaded).__name__}"
        raise refuse(path, what, f"it has no 'state_dict' entry (StudioGAN saves {{'state_dict': ...}}; found {found})")
    try:
        state = tensor_dict(loaded["state_dict"], path, "its 'state_dict'")
    except CheckpointError as error:
        raise refuse(path, what, str(error).removeprefix(f"{path}: ")) from None
    return loaded, {our_key(key): tensor for key, tensor in state.items()}


def our_key(key: str) -> str:
    """StudioGAN's key -> ours: blocks.3.0.conv1x1_theta.weight_orig -> blocks.3.g.weight_orig."""
    key = re.sub(r"^blocks\.(\d+)\.0\.", r"blocks.\1.", key)
    return ".".join(ATTENTION_NAMES.get(part, part) for part in key.split("."))


def their_key(key: str) -> str:
    """Ours -> StudioGAN's, for messages: blocks.3.g.weight -> blocks.3.0.conv1x1_theta.weight."""
    theirs = {ours: name for name, ours in ATTENTION_NAMES.items()}
    key = ".".join(theirs.get(part, part) for part in key.split("."))
    return re.sub(r"^blocks\.(\d+)\.", r"blocks.\1.0.", key)


def weight_shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Key -> shape, with spectral-norm triples named as the folded weight (weight_orig -> weight)."""
    return {key.removesuffix("_orig"): tuple(t.shape) for key, t in state.items()
            if not key.endswith(("weight_u", "weight_v"))}


@dataclass(frozen=True)
class GeneratorConfig:
    """A StudioGAN generator as its shapes describe it; blocks are (in, out) channels, each doubling the side."""

    backbone: str  # "resnet" (SAGAN, SNGAN, ...) or "big_resnet" (BigGAN)
    z_dim: int
    num_classes: int  # 0: g_cond_mtd "W/O"
    shared_dim: int  # big_resnet's class embedding width (0 for resnet or unconditional)
    blocks: tuple[tuple[int, int], ...]
    attention_after: tuple[int, ...]  # attn_g_loc: 1-based block numbers followed by a SelfAttention

    @property
    def resolution(self) -> int:
        """Side of the image: 4 (bottom) doubled by every block."""
        return 4 * 2 ** len(self.blocks)

    @property
    def chunk(self) -> int:
        """big_resnet: z is split into len(blocks) + 1 chunks of this size."""
        return self.z_dim // (len(self.blocks) + 1)

    def condition_dim(self) -> int | None:
        """Input width of each cBN's gain/bias; None for plain BN (resnet, unconditional)."""
        if self.backbone == "big_resnet":
            return self.chunk + self.shared_dim
        return self.num_classes or None

    def attention_sides(self) -> list[int]:
        """Side of the feature map each attention layer reads."""
        return [4 * 2 ** position for position in self.attention_after]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """A StudioGAN discriminator: (in, out, downsample) per block, attention after some, PD or no class head."""

    blocks: tuple[tuple[int, int, bool], ...]
    attention_after: tuple[int, ...]
    num_classes: int  # 0: d_cond_mtd "W/O"; otherwise "PD" (projection)
    resolution: int

    def attention_sides(self) -> list[int]:
        """Side of the feature map each attention layer reads."""
        sides, side = [], self.resolution
        for number, (_, _, down) in enumerate(self.blocks, start=1):
            side //= 2 if down else 1
            if number in self.attention_after:
                sides.append(side)
        return sides


def _block_layout(shapes: dict[str, tuple[int, ...]], path: Path, what: str) -> list[tuple[str, int, int]]:
    """[(kind, in, out)] for blocks.0, blocks.1, ...: kind "conv" (a residual block) or "attention"."""
    indices = sorted({int(m.group(1)) for key in shapes if (m := re.match(r"blocks\.(\d+)\.", key))})
    if not indices:
        raise refuse(path, what, f"it has no blocks.N layers (its keys start {sorted(shapes)[:3]})")
    if indices != list(range(len(indices))):
        raise refuse(path, what, f"its blocks are numbered {indices[:12]}, not 0, 1, 2, ...")
    layout = []
    for index in indices:
        conv, theta = shapes.get(f"blocks.{index}.conv2d1.weight"), shapes.get(f"blocks.{index}.g.weight")
        if conv is not None and len(conv) == 4:
            layout.append(("conv", conv[1], conv[0]))
        elif theta is not None and len(theta) == 4 and index > 0:
            layout.append(("attention", theta[1], theta[1]))
        else:
            raise refuse(path, what, f"blocks.{index} is neither a residual block nor a SelfAttention")
    for (_, _, out), (kind, cin, _) in zip(layout, layout[1:]):
        if cin != out:
            raise refuse(path, what, f"a {kind} block takes {cin} channels after a block that gives {out}")
    if any(not 1 <= c <= MAX_CHANNELS for _, cin, cout in layout for c in (cin, cout)):
        raise refuse(path, what, f"its channel counts exceed {MAX_CHANNELS}")
    if any(kind == "attention" and cin < 8 for kind, cin, _ in layout):
        raise refuse(path, what, "a SelfAttention has fewer than 8 channels")
    return layout


def _convs_and_attention(layout) -> tuple[list[tuple[int, int]], tuple[int, ...]]:
    convs = [(cin, cout) for kind, cin, cout in layout if kind == "conv"]
    after, count = [], 0
    for kind, _, _ in layout:
        count += kind == "conv"
        if kind == "attention":
            after.append(count)
    return convs, tuple(after)


def generator_config(shapes: dict[str, tuple[int, ...]], path: Path) -> GeneratorConfig:
    """The generator's architecture from its shapes; CheckpointError for one StudioGAN would not build."""
    what = "generator"
    layout = _block_layout(shapes, path, what)
    blocks, after = _convs_and_attention(layout)
    linear = shapes.get("linear0.weight")
    if linear is None or len(linear) != 2 or layout[0][0] != "conv":
        raise refuse(path, what, "it has no linear0 layer, or does not start with a residual block")
    if 4 * 2 ** len(blocks) not in RESOLUTIONS or linear[0] != blocks[0][0] * 16:
        raise refuse(path, what, f"{len(blocks)} blocks and linear0 {linear} fit no StudioGAN resolution "
                                 f"{RESOLUTIONS} with a 4x4 bottom")
    gain = shapes.get("blocks.0.bn1.gain.weight")
    shared = shapes.get("shared.weight")
    if shared is not None:  # big_resnet, conditional: cBN reads cat(shared(y), z chunk)
        backbone, num_classes, shared_dim, z_dim = "big_resnet", shared[0], shared[1], linear[1] * (len(blocks) + 1)
    elif gain is not None and gain[1] == linear[1]:  # big_resnet, unconditional: cBN reads the z chunk alone
        backbone, num_classes, shared_dim, z_dim = "big_resnet", 0, 0, linear[1] * (len(blocks) + 1)
    else:  # resnet: cBN reads the one-hot class, or plain BN without classes
        backbone, num_classes, shared_dim, z_dim = "resnet", gain[1] if gain else 0, 0, linear[1]
    if not 1 <= z_dim <= MAX_Z or not 0 <= num_classes <= MAX_CLASSES or shared_dim > MAX_Z:
        raise refuse(path, what, f"z_dim {z_dim} or {num_classes} classes are out of range")
    return GeneratorConfig(backbone, z_dim, num_classes, shared_dim, tuple(blocks), after)


def discriminator_config(shapes: dict[str, tuple[int, ...]], resolution: int, path: Path) -> DiscriminatorConfig:
    """The discriminator's architecture for a generator of this resolution; CheckpointError if it does not fit."""
    what = "discriminator"
    layout = _block_layout(shapes, path, what)
    convs, after = _convs_and_attention(layout)
    down = D_DOWNSAMPLE[resolution]
    if len(convs) != len(down) or convs[0][0] != 3:
        raise refuse(path, what, f"it has {len(convs)} blocks from {convs[0][0]} channels; StudioGAN's "
                                 f"{resolution}px discriminator has {len(down)} from RGB")
    if any(key.endswith(("bn0.weight", "bn1.weight", "bn2.weight")) for key in shapes):
        raise refuse(path, what, "it uses batch norm instead of spectral norm (apply_d_sn False), "
                                 "which this family does not read")
    head, embedding = shapes.get("linear1.weight"), shapes.get("embedding.weight")
    width = convs[-1][1]
    if head != (1, width) or (embedding is not None and (len(embedding) != 2 or embedding[1] != width)):
        raise refuse(path, what, f"its class head (linear1 {head}, embedding {embedding}) is not W/O or PD "
                                 "(projection); AC, 2C, D2DCE, MH and MD heads are not supported")
    blocks = tuple((cin, cout, flag) for (cin, cout), flag in zip(convs, down))
    return DiscriminatorConfig(blocks, after, embedding[0] if embedding else 0, resolution)


def fold_as_studiogan_samples(state: dict[str, torch.Tensor], path: Path, what: str) -> dict[str, torch.Tensor]:
    """Float32 weights with spectral norm folded after one power iteration from the stored u (StudioGAN's sampling)."""
    iterated = check_state_values(state, lambda reason: refuse(path, what, reason))
    for prefix in [key.removesuffix("weight_orig") for key in state if key.endswith("weight_orig")]:
        weight, u = iterated[prefix + "weight_orig"], iterated[prefix + "weight_u"]
        matrix = weight.reshape(weight.shape[0], -1)
        v = F.normalize(matrix.t() @ u, dim=0, eps=SN_EPS)  # torch's _SpectralNorm.compute_weight, train mode
        iterated[prefix + "weight_u"] = F.normalize(matrix @ v, dim=0, eps=SN_EPS)
        iterated[prefix + "weight_v"] = v
    try:
        return fold_spectral_norm(iterated, path)
    except CheckpointError as error:
        raise refuse(path, what, str(error).removeprefix(f"{path}: ")) from None


__all__ = ["DiscriminatorConfig", "GeneratorConfig", "discriminator_config", "fold_as_studiogan_samples",
           "generator_config", "read_studiogan_file", "refuse", "their_key", "weight_shapes"]

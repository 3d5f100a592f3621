"""heykeetae/Self-Attention-GAN's 64x64 SAGAN (sagan_models.py, commit 8714a54) with plain convolutions.

Their SpectralNorm wrapper keeps weight_bar, weight_u and weight_v, and on EVERY forward (train or eval)
runs one power iteration from the stored u before dividing: v = W^T u / |.|, u = W v / |.|,
sigma = u^T W v, W_mat = weight_bar.view(weight_bar.shape[0], -1) even for ConvTranspose2d. We fold
exactly that once at load: the weights their networks use on the first forward after loading the file
(each later forward of theirs iterates again and drifts by a little).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import SelfAttention
from ..checkpoint import CheckpointError
from .state_files import check_state_dict

FORMAT = "a heykeetae/Self-Attention-GAN state dict"
MAX_Z_DIM = 4096
MAX_CONV_DIM = 1024  # their released settings use 64
RESOLUTION = 64  # their models only run at imsize 64 (imsize 32 has no l4 but calls it)
L2_EPS = 1e-12  # spectral.py's l2normalize: v / (|v| + eps)
# their Self_Attn names -> SelfAttention's: query_conv is the query g, key_conv the key f, value_conv the value h
ATTENTION_NAMES = {"query_conv": "g", "key_conv": "f", "value_conv": "h"}
# G's BatchNorm2d counters: in files from torch >= 0.4.1, absent from older ones, unused in eval
NUM_BATCHES_TRACKED = {f"l{index}.1.num_batches_tracked": () for index in range(1, 5)}


def generator_channels(conv_dim: int) -> list[int]:
    """G's channels after l1..l4: 8, 4, 2, 1 x conv_dim (their mult = 2 ** (log2(64) - 3))."""
    return [conv_dim * 8 // 2**k for k in range(4)]


def discriminator_channels(conv_dim: int) -> list[int]:
    """D's channels after l1..l4: 1, 2, 4, 8 x conv_dim."""
    return [conv_dim * 2**k for k in range(4)]


def _spectral(prefix: str, shape: tuple[int, ...], bias: int) -> dict[str, tuple[int, ...]]:
    """Their SpectralNorm(module) keys: u over shape[0] rows, v over the flattened rest, and the bias."""
    return {f"{prefix}.module.bias": (bias,), f"{prefix}.module.weight_u": (shape[0],),
            f"{prefix}.module.weight_v": (math.prod(shape[1:]),), f"{prefix}.module.weight_bar": shape}


def _attention(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.gamma": (1,)}
    for name, width in (("query_conv", channels // 8), ("key_conv", channels // 8), ("value_conv", channels)):
        shapes[f"{prefix}.{name}.weight"], shapes[f"{prefix}.{name}.bias"] = (width, channels, 1, 1), (width,)
    return shapes


def generator_shapes(z_dim: int, conv_dim: int) -> dict[str, tuple[int, ...]]:
    """Every key of their Generator(image_size=64).state_dict() and its shape (num_batches_tracked aside)."""
    channels = generator_channels(conv_dim)
    shapes, previous = {}, z_dim
    for index, width in enumerate(channels, start=1):
        shapes.update(_spectral(f"l{index}.0", (previous, width, 4, 4), width))  # ConvTranspose2d: (in, out, k, k)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"l{index}.1.{name}"] = (width,)
        previous = width
    shapes["last.0.weight"], shapes["last.0.bias"] = (previous, 3, 4, 4), (3,)
    shapes.update(_attention("attn1", channels[2]))
    shapes.update(_attention("attn2", channels[3]))
    return shapes


def discriminator_shapes(conv_dim: int) -> dict[str, tuple[int, ...]]:
    """Every key of their Discriminator(image_size=64).state_dict() and its shape."""
    channels = discriminator_channels(conv_dim)
    shapes, previous = {}, 3
    for index, width in enumerate(channels, start=1):
        shapes.update(_spectral(f"l{index}.0", (width, previous, 4, 4), width))
        previous = width
    shapes["last.0.weight"], shapes["last.0.bias"] = (1, previous, 4, 4), (1,)
    shapes.update(_attention("attn1", channels[2]))
    shapes.update(_attention("attn2", channels[3]))
    return shapes


def infer_shapes(generator_state: dict[str, torch.Tensor], path: Path) -> tuple[int, int]:
    """(z_dim, conv_dim) from l1's ConvTranspose2d weight (z_dim, 8 conv_dim, 4, 4); CheckpointError if absurd."""
    weight = generator_state.get("l1.0.module.weight_bar")
    if weight is None or weight.dim() != 4 or weight.shape[1] % 8:
        raise CheckpointError(f"{path}: looks like {FORMAT}, but l1.0.module.weight_bar is missing or is not a "
                              "(z_dim, 8 * conv_dim, 4, 4) ConvTranspose2d weight: not their generator")
    z_dim, conv_dim = weight.shape[0], weight.shape[1] // 8
    if not (1 <= z_dim <= MAX_Z_DIM and 8 <= conv_dim <= MAX_CONV_DIM):
        raise CheckpointError(f"{path}: looks like {FORMAT}, but z_dim {z_dim} and conv_dim {conv_dim} are out of "
                              f"range (1..{MAX_Z_DIM}; 8..{MAX_CONV_DIM}: attn2 needs conv_dim >= 8 channels)")
    return z_dim, conv_dim


def infer_discriminator_conv_dim(state: dict[str, torch.Tensor], path: Path) -> int:
    """D's conv_dim from l1's Conv2d weight (conv_dim, 3, 4, 4)."""
    weight = state.get("l1.0.module.weight_bar")
    if weight is None or weight.dim() != 4 or tuple(weight.shape[1:]) != (3, 4, 4):
        raise CheckpointError(f"{path}: looks like {FORMAT}, but it is not their discriminator "
                              "(l1.0.module.weight_bar is not a (conv_dim, 3, 4, 4) weight)")
    conv_dim = weight.shape[0]
    if not 2 <= conv_dim <= MAX_CONV_DIM:  # D's attn1 has 4 conv_dim channels, at least 8
        raise CheckpointError(f"{path}: looks like {FORMAT}, but D's conv_dim {conv_dim} is out of range 2..{MAX_CONV_DIM}")
    return conv_dim


def iterated_sigma(weight: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """sigma as their SpectralNorm._update_u_v computes it: one power iteration from the stored u, then u^T W v."""
    matrix = weight.reshape(weight.shape[0], -1)
    v = matrix.t().mv(u)
    v = v / (v.norm() + L2_EPS)
    u = matrix.mv(v)
    u = u / (u.norm() + L2_EPS)
    return u.dot(matrix.mv(v))


def fold_spectral_norm(state: dict[str, torch.Tensor], path: Path, what: str) -> dict[str, torch.Tensor]:
    """Replace each X.module.{weight_bar, weight_u, weight_v} by X.module.weight = weight_bar / sigma."""
    folded = {key: t for key, t in state.items() if not key.endswith(("weight_bar", "weight_u", "weight_v"))}
    for prefix in [key[: -len("weight_bar")] for key in state if key.endswith("weight_bar")]:
        sigma = iterated_sigma(state[prefix + "weight_bar"], state[prefix + "weight_u"])
        if not torch.isfinite(sigma) or sigma <= 0:
            raise CheckpointError(f"{path}: looks like {what}, but {prefix}weight_u gives sigma {sigma.item():.3g}")
        folded[prefix + "weight"] = state[prefix + "weight_bar"] / sigma
    return folded


def our_key(key: str) -> str:
    """Their key (folded) -> ours: l3.0.module.weight -> blocks.2.conv.weight, attn1.query_conv.bias -> attention.0.g.bias."""
    parts = key.replace(".module.", ".").split(".")
    if parts[0] == "last":
        return ".".join(["output_conv", *parts[2:]])
    if parts[0].startswith("attn"):
        return ".".join(["attention", str(int(parts[0][4:]) - 1), *(ATTENTION_NAMES.get(p, p) for p in parts[1:])])
    layer = {"0": "conv", "1": "norm"}[parts[1]]
    return ".".join(["blocks", str(int(parts[0][1:]) - 1), layer, *parts[2:]])


def prepare_state(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], path: Path,
                  what: str) -> dict[str, torch.Tensor]:
    """Checked, folded and renamed: a state dict our networks load strictly."""
    checked = check_state_dict(state, expected, path, what, NUM_BATCHES_TRACKED)
    folded = fold_spectral_norm(checked, path, what)
    return {our_key(key): value for key, value in folded.items() if not key.endswith("num_batches_tracked")}


class GeneratorNorm(nn.BatchNorm2d):
    """BatchNorm2d that never updates its statistics: running ones (eval) or the batch's (their trainer's sampling)."""

    def __init__(self, channels: int, batch_statistics: bool) -> None:
        super().__init__(channels, track_running_stats=True)
        self.batch_statistics = batch_statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x (B, C, H, W) per channel."""
        if self.batch_statistics:  # biased variance over (B, H, W), as train-mode BatchNorm2d normalises
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class UpBlock(nn.Module):
    """Their l1..l4 of G: ConvTranspose2d (4x4; stride 2 after the first), BatchNorm2d, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, first: bool, batch_statistics: bool) -> None:
        super().__init__()
        stride, padding = (1, 0) if first else (2, 1)
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride, padding)
        self.norm = GeneratorNorm(out_channels, batch_statistics)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W); 1x1 -> 4x4 for the first block."""
        return F.relu(self.norm(self.conv(x)))


class DownBlock(nn.Module):
    """Their l1..l4 of D: Conv2d (4x4, stride 2), LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
        return F.leaky_relu(self.conv(x), 0.1)


class HeykeetaeGenerator(nn.Module):
    """z (B, z_dim) -> image (B, 3, 64, 64): 1 -> 4 -> 8 -> 16, attn0, -> 32, attn1, -> 64."""

    def __init__(self, z_dim: int, conv_dim: int, batch_statistics: bool = False) -> None:
        super().__init__()
        channels = generator_channels(conv_dim)
        inputs = [z_dim, *channels[:-1]]
        self.blocks = nn.ModuleList(UpBlock(cin, cout, index == 0, batch_statistics)
                                    for index, (cin, cout) in enumerate(zip(inputs, channels)))
        self.attention = nn.ModuleList(SelfAttention(width, "paper", spectral=False, bias=True)
                                       for width in channels[2:])
        self.output_conv = nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1]; in batch-statistics mode every image depends on the whole batch."""
        h = z.view(z.shape[0], z.shape[1], 1, 1)
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index >= 2:  # their attn1 after l3 (16x16), attn2 after l4 (32x32)
                h = self.attention[index - 2](h)
        return torch.tanh(self.output_conv(h))

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """[("attn0", 16x16 layer), ("attn1", 32x32 layer)]: their attn1 and attn2."""
        return [(f"attn{index}", layer) for index, layer in enumerate(self.attention)]


class HeykeetaeDiscriminator(nn.Module):
    """image (B, 3, 64, 64) -> score (B,): 64 -> 32 -> 16 -> 8, attn0, -> 4, attn1, -> 4x4 conv to 1."""

    def __init__(self, conv_dim: int) -> None:
        super().__init__()
        channels = discriminator_channels(conv_dim)
        self.blocks = nn.ModuleList(DownBlock(cin, cout) for cin, cout in zip([3, *channels[:-1]], channels))
        self.attention = nn.ModuleList(SelfAttention(width, "paper", spectral=False, bias=True)
                                       for width in channels[2:])
        self.output_conv = nn.Conv2d(channels[-1], 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (B,), as their out.squeeze() for a batch."""
        h = x
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index >= 2:
                h = self.attention[index - 2](h)
        return self.output_conv(h).reshape(x.shape[0])

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """[("attn0", 8x8 layer), ("attn1", 4x4 layer)]: their attn1 and attn2."""
        return [(f"attn{index}", layer) for index, layer in enumerate(self.attention)]

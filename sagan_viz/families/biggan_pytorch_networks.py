"""ajbrock/BigGAN-PyTorch's BigGAN.py networks (commit 9845943) in eval mode, with plain (folded) weights.

The architecture tables are theirs (G_arch, D_arch); a config says which table, how wide, and where the
attention layers sit. Layer names follow theirs (blocks.i.conv1, bn1.gain, output_layer), so a state dict
maps over key by key; only the attention layer is ours, SelfAttention "official" (their Attention).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import SelfAttention

BOTTOM_WIDTH = 4  # Generator(bottom_width=4): no flag sets it
OUTPUT_BN_EPS = 1e-5  # the output layer's layers.bn gets no eps argument, whatever BN_eps says
# resolution -> (in, out) channel multipliers of G's blocks (G_arch); every block up-samples
G_ARCH = {32: ([4, 4, 4], [4, 4, 4]), 64: ([16, 16, 8, 4], [16, 8, 4, 2]), 128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
          256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]), 512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1])}
# resolution -> (in, out) multipliers of D's blocks after the RGB input, and which blocks down-sample (D_arch)
D_ARCH = {32: ([4, 4, 4], [4, 4, 4, 4], [True, True, False, False]),
          64: ([1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False]),
          128: ([1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
          256: ([1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False])}


@dataclass(frozen=True)
class GeneratorConfig:
    """What BigGAN.Generator(**config) needs, as the weights (and state_dict.pth, where present) say."""

    resolution: int
    channels: int  # G_ch
    z_chunk: int  # width of the z that reaches the first linear layer: dim_z, or one chunk when hier
    n_classes: int
    shared_dim: int  # 0: G_shared off, the batch-norm gains are per-class embeddings
    hier: bool
    attention: tuple[int, ...]  # indices of the blocks an attention layer follows
    bn_eps: float = 1e-5

    @property
    def in_channels(self) -> list[int]:
        """Input channels of each block."""
        return [self.channels * mult for mult in G_ARCH[self.resolution][0]]

    @property
    def out_channels(self) -> list[int]:
        """Output channels of each block."""
        return [self.channels * mult for mult in G_ARCH[self.resolution][1]]

    @property
    def z_dim(self) -> int:
        """Length of z: one chunk per block and one for the first layer when hier."""
        return self.z_chunk * (len(self.in_channels) + 1) if self.hier else self.z_chunk

    @property
    def condition_dim(self) -> int:
        """Input width of a batch norm's gain and bias layers (shared embedding + z chunk); 0 for embeddings."""
        return self.shared_dim + self.z_chunk * self.hier if self.shared_dim else 0

    def block_side(self, index: int) -> int:
        """Side of the feature map block index outputs."""
        return BOTTOM_WIDTH * 2 ** (index + 1)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """What BigGAN.Discriminator(**config) needs."""

    resolution: int
    channels: int  # D_ch
    wide: bool  # D_wide: a block's hidden width is its output's (else its input's)
    n_classes: int
    attention: tuple[int, ...]

    @property
    def in_channels(self) -> list[int]:
        """Input channels of each block (3 for the image)."""
        return [3] + [self.channels * mult for mult in D_ARCH[self.resolution][0]]

    @property
    def out_channels(self) -> list[int]:
        """Output channels of each block."""
        return [self.channels * mult for mult in D_ARCH[self.resolution][1]]

    @property
    def downsample(self) -> list[bool]:
        """Whether each block halves the map (2x2 average pooling)."""
        return D_ARCH[self.resolution][2]

    def block_side(self, index: int) -> int:
        """Side of the feature map block index outputs (their arch 'resolution' labels aside)."""
        return self.resolution // 2 ** sum(self.downsample[: index + 1])


class ConditionalNorm(nn.Module):
    """Their ccbn in eval mode: stored statistics, then gain 1 + gain(y) and bias(y) per image."""

    def __init__(self, channels: int, config: GeneratorConfig) -> None:
        super().__init__()
        self.eps = config.bn_eps
        if config.shared_dim:  # y is the shared embedding (and a z chunk): linear gains
            self.gain = nn.Linear(config.condition_dim, channels, bias=False)
            self.bias = nn.Linear(config.condition_dim, channels, bias=False)
        else:  # y is the class index itself: per-class embeddings
            self.gain = nn.Embedding(config.n_classes, channels)
            self.bias = nn.Embedding(config.n_classes, channels)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), y (B, condition_dim) or class indices (B,)."""
        gain = (1 + self.gain(y))[:, :, None, None]  # (B, C, 1, 1)
        bias = self.bias(y)[:, :, None, None]
        return F.batch_norm(x, self.stored_mean, self.stored_var, None, None, False, 0.0, self.eps) * gain + bias


class GeneratorBlock(nn.Module):
    """Their GBlock: bn, relu, up-sample, 3x3 conv, bn, relu, 3x3 conv; 1x1 conv on the up-sampled skip."""

    def __init__(self, in_channels: int, out_channels: int, config: GeneratorConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_sc = nn.Conv2d(in_channels, out_channels, 1)
        self.bn1 = ConditionalNorm(in_channels, config)
        self.bn2 = ConditionalNorm(out_channels, config)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class OutputNorm(nn.Module):
    """Their layers.bn in eval mode: stored statistics, learned gain and bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x (B, C, H, W)."""
        return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias, False, 0.0, OUTPUT_BN_EPS)


def attention_layers(blocks: dict[str, SelfAttention]) -> list[tuple[str, SelfAttention]]:
    """[("attn0", first layer), ...] in forward order."""
    return [(f"attn{index}", blocks[key]) for index, key in enumerate(sorted(blocks, key=int))]


class BigGANPyTorchGenerator(nn.Module):
    """z (B, z_dim) and class indices (B,) -> images (B, 3, R, R) in [-1, 1], as G(z, G.shared(y)) in eval mode."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.n_classes, config.shared_dim) if config.shared_dim else None
        self.linear = nn.Linear(config.z_chunk, config.in_channels[0] * BOTTOM_WIDTH**2)
        self.blocks = nn.ModuleList(GeneratorBlock(cin, cout, config)
                                    for cin, cout in zip(config.in_channels, config.out_channels))
        self.attention = nn.ModuleDict({str(index): SelfAttention(config.out_channels[index], "official", spectral=False)
                                        for index in config.attention})
        self.output_norm = OutputNorm(config.out_channels[-1])
        self.output_conv = nn.Conv2d(config.out_channels[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generate; with hier, z's first chunk feeds the linear layer and chunk i + 1 block i's batch norms."""
        y = labels if self.shared is None else self.shared(labels)  # (B, shared_dim), or indices
        if self.config.hier:
            first, *chunks = torch.split(z, self.config.z_chunk, dim=1)
            conditions = [torch.cat([y, chunk], dim=1) for chunk in chunks]
        else:
            first, conditions = z, [y] * len(self.blocks)
        h = self.linear(first).view(z.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for index, block in enumerate(self.blocks):
            h = block(h, conditions[index])
            if str(index) in self.attention:
                h = self.attention[str(index)](h)
        return torch.tanh(self.output_conv(F.relu(self.output_norm(h))))

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """G's attention layers in forward order."""
        return attention_layers(self.attention)


class DiscriminatorBlock(nn.Module):
    """Their DBlock: (relu after the first block), 3x3 conv, relu, 3x3 conv, avg-pool; 1x1 conv skip."""

    def __init__(self, in_channels: int, out_channels: int, wide: bool, preactivation: bool, downsample: bool) -> None:
        super().__init__()
        hidden = out_channels if wide else in_channels
        self.preactivation, self.downsample = preactivation, downsample
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, out_channels, 3, padding=1)
        self.conv_sc = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels or downsample else None

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path: conv then pool after the first block, pool then conv in it (as theirs)."""
        if self.preactivation and self.conv_sc is not None:
            x = self.conv_sc(x)
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if not self.preactivation and self.conv_sc is not None:
            x = self.conv_sc(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W'), H' = H/2 when down-sampling."""
        h = self.conv1(F.relu(x) if self.preactivation else x)
        h = self.conv2(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)


class BigGANPyTorchDiscriminator(nn.Module):
    """images (B, 3, R, R) and class indices (B,) -> scores (B,): sum-pooled features, linear + projection."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(cin, cout, config.wide, index > 0, down) for index, (cin, cout, down)
            in enumerate(zip(config.in_channels, config.out_channels, config.downsample)))
        self.attention = nn.ModuleDict({str(index): SelfAttention(config.out_channels[index], "official", spectral=False)
                                        for index in config.attention})
        self.linear = nn.Linear(config.out_channels[-1], 1)
        self.embed = nn.Embedding(config.n_classes, config.out_channels[-1])

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D(x, y)[:, 0]."""
        h = x
        for index, block in enumerate(self.blocks):
            h = block(h)
            if str(index) in self.attention:
                h = self.attention[str(index)](h)
        h = torch.sum(F.relu(h), dim=[2, 3])  # (B, C): global sum pooling, as SN-GAN
        return (self.linear(h) + torch.sum(self.embed(labels) * h, dim=1, keepdim=True))[:, 0]

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """D's attention layers in forward order."""
        return attention_layers(self.attention)

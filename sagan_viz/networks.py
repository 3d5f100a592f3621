"""SAGAN generator and discriminator: SNGAN-style ResNet blocks with self-attention.

Spectral normalisation sits on every convolution, linear and embedding layer of both
G and D (section 4.1 of the paper). Attention layers go after the block that outputs
the feature size named in the config (the paper's feat8, feat16, ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .attention import SelfAttention
from .config import ModelConfig, discriminator_resolutions, feature_channels, generator_resolutions
from .layer_names import layer_name


def sn_conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Module:
    """Spectrally normalised 'same' convolution."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


def sn_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    """Spectrally normalised linear layer."""
    return spectral_norm(nn.Linear(in_features, out_features, bias=bias))


def sn_embedding(num_classes: int, dim: int) -> nn.Module:
    """Spectrally normalised class embedding (projection D, conditional BN)."""
    return spectral_norm(nn.Embedding(num_classes, dim))


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias come from the class label; plain affine BN when unconditional."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.conditional = num_classes > 0
        self.norm = nn.BatchNorm2d(channels, affine=not self.conditional)
        if self.conditional:
            self.gain = sn_embedding(num_classes, channels)
            self.bias = sn_embedding(num_classes, channels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Normalise x (B, C, H, W), then scale and shift per class."""
        out = self.norm(x)
        if not self.conditional:
            return out
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        gain = 1.0 + self.gain(labels)[:, :, None, None]  # (B, C, 1, 1), centred on identity
        return out * gain + self.bias(labels)[:, :, None, None]


class GeneratorBlock(nn.Module):
    """BN-ReLU-up-conv-BN-ReLU-conv with an upsampled 1x1 shortcut; doubles H and W."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm(in_channels, num_classes)
        self.conv1 = sn_conv(in_channels, out_channels)
        self.norm2 = ConditionalBatchNorm(out_channels, num_classes)
        self.conv2 = sn_conv(out_channels, out_channels)
        self.shortcut = sn_conv(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        h = F.interpolate(F.relu(self.norm1(x, labels)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """ReLU-conv-ReLU-conv-avgpool with a 1x1 shortcut; halves H and W.

    The first block skips the leading ReLU and pools before its shortcut conv
    (SNGAN's 'optimized block'), since its input is the image itself.
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv1 = sn_conv(in_channels, out_channels)
        self.conv2 = sn_conv(out_channels, out_channels)
        self.shortcut = sn_conv(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        if self.first:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        return h + F.avg_pool2d(self.shortcut(x), 2)


def _attention_layers(stages: nn.ModuleList) -> list[tuple[str, SelfAttention]]:
    layers = [m for m in stages if isinstance(m, SelfAttention)]
    return [(f"attn{index}", layer) for index, layer in enumerate(layers)]


class Generator(nn.Module):
    """z (B, z_dim) [+ labels (B,)] -> image (B, 3, R, R) in [-1, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        base, res = config.g_channels, config.resolution
        self.initial_channels = feature_channels(base, res, 4)
        self.linear = sn_linear(config.z_dim, 4 * 4 * self.initial_channels)
        self.stages = nn.ModuleList()
        channels = self.initial_channels
        for size in generator_resolutions(res):
            out_channels = feature_channels(base, res, size)
            self.stages.append(GeneratorBlock(channels, out_channels, config.num_classes))
            if size in config.g_attention:
                self.stages.append(SelfAttention(out_channels, config.attention_variant))
            channels = out_channels
        self.output_norm = nn.BatchNorm2d(channels)
        self.output_conv = sn_conv(channels, config.image_channels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images from latents (and labels when conditional)."""
        h = self.linear(z).view(z.shape[0], self.initial_channels, 4, 4)
        for stage in self.stages:
            h = stage(h, labels) if isinstance(stage, GeneratorBlock) else stage(h)
        return torch.tanh(self.output_conv(F.relu(self.output_norm(h))))

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """[("attn0", layer), ...] in forward order."""
        return _attention_layers(self.stages)


class Discriminator(nn.Module):
    """image (B, 3, R, R) [+ labels] -> hinge-loss score (B,); projection term when conditional."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        base, res = config.d_channels, config.resolution
        self.stages = nn.ModuleList()
        channels = config.image_channels
        for index, size in enumerate(discriminator_resolutions(res)):
            out_channels = feature_channels(base, res, size)
            self.stages.append(DiscriminatorBlock(channels, out_channels, first=index == 0))
            if size in config.d_attention:
                self.stages.append(SelfAttention(out_channels, config.attention_variant))
            channels = out_channels
        self.linear = sn_linear(channels, 1)
        self.embedding = sn_embedding(config.num_classes, channels) if config.conditional else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Score real-vs-fake; higher means 'real'."""
        h = images
        for stage in self.stages:
            h = stage(h)
        features = F.relu(h).sum(dim=(2, 3))  # (B, C): global sum pooling
        score = self.linear(features).squeeze(1)
        if self.embedding is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            score = score + (self.embedding(labels) * features).sum(dim=1)  # projection (Miyato 2018)
        return score

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """[("attn0", layer), ...] in forward order."""
        return _attention_layers(self.stages)


def build_networks(config: ModelConfig) -> tuple[Generator, Discriminator]:
    """Fresh G and D for a config."""
    return Generator(config), Discriminator(config)


def attention_layer_names(config: ModelConfig) -> list[str]:
    """Names used everywhere for the attention layers: G's first, e.g. ['G.attn0', 'D.attn0']."""
    return [layer_name("G", i) for i in range(len(config.g_attention))] + [
        layer_name("D", i) for i in range(len(config.d_attention))
    ]


def gammas(generator: Generator, discriminator: Discriminator) -> dict[str, float]:
    """Current gamma of every attention layer, keyed by its full name."""
    values = {}
    for network_name, network in (("G", generator), ("D", discriminator)):
        for index, (_, layer) in enumerate(network.attention_layers()):
            values[layer_name(network_name, index)] = layer.gamma.item()
    return values


def fold_spectral_norm(network: nn.Module) -> nn.Module:
    """Replace every spectral-norm parametrisation by the weight it gives now, W / σ: for a network that only
    runs in eval mode (σ then stays fixed), the same outputs without recomputing σ on every forward."""
    for module in network.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return network

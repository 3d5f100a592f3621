"""PyTorch-StudioGAN's SAGAN (resnet) and BigGAN (big_resnet) generators and discriminators, with plain layers.

Built from the configs studiogan_layout reads off a file's shapes, on the meta device first, compared key by
key with the folded weights, and only then loaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import SelfAttention
from .studiogan_layout import DiscriminatorConfig, GeneratorConfig, refuse, their_key

BN_EPS = 1e-4  # utils/ops.py: batchnorm_2d and ConditionalBatchNorm2d


def load_into(network: nn.Module, folded: dict[str, torch.Tensor], path: Path, what: str,
              device: torch.device) -> nn.Module:
    """Compare keys and shapes with a meta-device build, then load; eval mode, no gradients."""
    expected = {key: tuple(t.shape) for key, t in network.state_dict().items()}
    missing = sorted(set(expected) - set(folded))
    unexpected = sorted(set(folded) - set(expected))
    if missing or unexpected:
        named = [[their_key(key) for key in keys[:4]] for keys in (missing, unexpected)]
        raise refuse(path, what, f"its keys do not fit the architecture its shapes imply: missing {named[0]}"
                                 f"{' ...' * (len(missing) > 4)}, unexpected {named[1]}"
                                 f"{' ...' * (len(unexpected) > 4)}")
    for key, shape in expected.items():
        if tuple(folded[key].shape) != shape:
            raise refuse(path, what, f"{their_key(key)} has shape {tuple(folded[key].shape)}, the architecture "
                                     f"needs {shape}")
    network.load_state_dict(folded, strict=True, assign=True)
    return network.requires_grad_(False).to(device=device, dtype=torch.float32).eval()


class ConditionalNorm(nn.Module):
    """ConditionalBatchNorm2d: BN without affine, then (1 + gain(y)) and bias(y) from a condition vector."""

    def __init__(self, channels: int, condition_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS, affine=False)
        self.gain = nn.Linear(condition_dim, channels, bias=False)
        self.bias = nn.Linear(condition_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), condition (B, condition_dim)."""
        return self.bn(x) * (1 + self.gain(condition))[:, :, None, None] + self.bias(condition)[:, :, None, None]


def _normalise(norm: nn.Module, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    return norm(x) if isinstance(norm, nn.BatchNorm2d) else norm(x, condition)


class GenBlock(nn.Module):
    """resnet / big_resnet GenBlock: BN, ReLU, 2x nearest, 3x3 conv, BN, ReLU, 3x3 conv; 1x1 conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int, condition_dim: int | None) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c, eps=BN_EPS)) if condition_dim is None else (
            lambda c: ConditionalNorm(c, condition_dim))
        self.bn1, self.bn2 = norm(in_channels), norm(out_channels)
        self.conv2d0 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv2d1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2d2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        h = F.interpolate(F.relu(_normalise(self.bn1, x, condition)), scale_factor=2, mode="nearest")
        h = self.conv2d2(F.relu(_normalise(self.bn2, self.conv2d1(h), condition)))
        return h + self.conv2d0(F.interpolate(x, scale_factor=2, mode="nearest"))


def attention_layers_of(blocks: nn.ModuleList) -> list[tuple[str, SelfAttention]]:
    """[("attn0", layer), ...] in forward order."""
    layers = [block for block in blocks if isinstance(block, SelfAttention)]
    return [(f"attn{index}", layer) for index, layer in enumerate(layers)]


class StudioGANGenerator(nn.Module):
    """z (B, z_dim), class indices (B,) or None -> images (B, 3, R, R) in [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        big = config.backbone == "big_resnet"
        self.linear0 = nn.Linear(config.chunk if big else config.z_dim, config.blocks[0][0] * 16)
        if big and config.num_classes:
            self.shared = nn.Embedding(config.num_classes, config.shared_dim)
        blocks, condition_dim = [], config.condition_dim()
        for number, (cin, cout) in enumerate(config.blocks, start=1):
            blocks.append(GenBlock(cin, cout, condition_dim))
            if number in config.attention_after:
                blocks.append(SelfAttention(cout, variant="official", spectral=False, bias=False))
        self.blocks = nn.ModuleList(blocks)
        self.bn4 = nn.BatchNorm2d(config.blocks[-1][1], eps=BN_EPS)
        self.conv2d5 = nn.Conv2d(config.blocks[-1][1], 3, 3, padding=1)

    def conditions(self, z: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, list]:
        """(input of linear0, one condition per residual block) as the backbone makes them."""
        count = len(self.config.blocks)
        if self.config.backbone == "big_resnet":
            first, *rest = torch.split(z, self.config.chunk, dim=1)
            if self.config.num_classes:
                rest = [torch.cat((self.shared(labels), chunk), dim=1) for chunk in rest]  # shared first
            return first, list(rest)
        one_hot = F.one_hot(labels, self.config.num_classes).float() if self.config.num_classes else None
        return z, [one_hot] * count

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images."""
        start, conditions = self.conditions(z, labels)
        h = self.linear0(start).view(-1, self.config.blocks[0][0], 4, 4)
        conditions = iter(conditions)
        for block in self.blocks:
            h = block(h) if isinstance(block, SelfAttention) else block(h, next(conditions))
        return torch.tanh(self.conv2d5(F.relu(self.bn4(h))))

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """The SelfAttention layers in forward order."""
        return attention_layers_of(self.blocks)


class DiscBlock(nn.Module):
    """DiscOptBlock (first) or DiscBlock; a spectral-norm D has no BN."""

    def __init__(self, in_channels: int, out_channels: int, down: bool, first: bool) -> None:
        super().__init__()
        self.first, self.down = first, down
        if first or down or in_channels != out_channels:
            self.conv2d0 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv2d1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2d2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W'), H' = H/2 when down-sampling."""
        if self.first:  # DiscOptBlock: conv first, shortcut pooled then 1x1
            h = F.avg_pool2d(self.conv2d2(F.relu(self.conv2d1(x))), 2)
            return h + self.conv2d0(F.avg_pool2d(x, 2))
        # StudioGAN's `x0 = x; x = self.activation(x)` is an in-place ReLU (nn.ReLU(inplace=True)), so the
        # shortcut reads relu(x) too; computed out of place here, with the same values.
        activated = F.relu(x)
        h = self.conv2d2(F.relu(self.conv2d1(activated)))
        shortcut = self.conv2d0(activated) if hasattr(self, "conv2d0") else activated
        if self.down:
            h, shortcut = F.avg_pool2d(h, 2), F.avg_pool2d(shortcut, 2)
        return h + shortcut


class StudioGANDiscriminator(nn.Module):
    """Images (B, 3, R, R), class indices (B,) -> adversarial scores (B,), projection added for PD."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        blocks = []
        for number, (cin, cout, down) in enumerate(config.blocks, start=1):
            blocks.append(DiscBlock(cin, cout, down, first=number == 1))
            if number in config.attention_after:
                blocks.append(SelfAttention(cout, variant="official", spectral=False, bias=False))
        self.blocks = nn.ModuleList(blocks)
        width = config.blocks[-1][1]
        self.linear1 = nn.Linear(width, 1)
        if config.num_classes:
            self.embedding = nn.Embedding(config.num_classes, width)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's adv_output, as StudioGAN's Discriminator returns it (per image)."""
        h = images
        for block in self.blocks:
            h = block(h)
        h = torch.sum(F.relu(h), dim=[2, 3])  # (B, C)
        score = self.linear1(h)[:, 0]
        if self.config.num_classes:
            score = score + torch.sum(self.embedding(labels) * h, dim=1)
        return score

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """The SelfAttention layers in forward order."""
        return attention_layers_of(self.blocks)


def build(network_class, config, folded, path: Path, what: str, device: torch.device) -> nn.Module:
    """A network of this config with these folded weights (CheckpointError when they do not fit)."""
    with torch.device("meta"):  # nothing allocated until the weights are known to fit
        network = network_class(config)
    return load_into(network, folded, path, what, device)


__all__ = ["StudioGANDiscriminator", "StudioGANGenerator", "build"]

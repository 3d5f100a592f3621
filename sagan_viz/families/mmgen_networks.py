"""mmgeneration's SAGAN / SNGAN-Proj (SNGANGenerator, ProjDiscriminator), with plain layers.

The architecture is read from the state dict's shapes; what shapes cannot say (BN eps, whether cBN gains are
1 + embedding, in-place ReLU in D, D's down-sampling) comes from the config text mmgen saves in meta, or
mmgen's defaults. Spectral norm (torch's) is folded with the stored u, v, as mmgen's eval mode computes it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import SelfAttention
from ..checkpoint import CheckpointError

MAX_CHANNELS, MAX_CLASSES, MAX_NOISE, MAX_RESOLUTION = 65536, 100_000, 4096, 4096
D_DOWNSAMPLE = {32: (True, False, False), 64: (True,) * 4, 128: (True,) * 4 + (False,)}  # _defualt_downsample_cfg
# mmgen's SelfAttentionBlock names -> SelfAttention's: theta is the query g, phi the key f, g the value h
ATTENTION_NAMES = {"theta": "g", "phi": "f", "g": "h", "o": "v"}


def refuse(path: Path, reason: str) -> CheckpointError:
    """The error for a file that looks like an mmgeneration checkpoint but does not fit."""
    return CheckpointError(f"{path}: looks like an mmgeneration SAGAN checkpoint, but {reason}")


def our_key(key: str) -> str:
    """mmgen's key -> ours: conv_blocks.2.theta.conv.weight -> conv_blocks.2.g.weight, gamma kept."""
    key = re.sub(r"\.(conv_1|conv_2|shortcut|theta|phi|g|o)\.conv\.", r".\1.", key)
    return ".".join(ATTENTION_NAMES.get(part, part) for part in key.split("."))


def their_key(key: str) -> str:
    """Ours -> mmgen's, for messages: conv_blocks.2.g.weight -> conv_blocks.2.theta.conv.weight."""
    theirs = {ours: name for name, ours in ATTENTION_NAMES.items()}
    parts = key.split(".")
    if len(parts) > 2 and parts[-2] in (*theirs, "conv_1", "conv_2", "shortcut") and parts[0] != "to_rgb":
        parts[-2:-1] = [theirs.get(parts[-2], parts[-2]), "conv"]
    return ".".join(parts)


@dataclass(frozen=True)
class Settings:
    """What the config decides and shapes do not; defaults are SNGANGenerator's and ProjDiscriminator's."""

    norm_eps: float = 1e-4
    reweight_embedding: bool = True  # init_cfg type BigGAN (default) or studio: cBN gain is 1 + embedding
    discriminator_inplace_relu: bool = False  # act_cfg inplace: D's shortcut then reads relu(x)
    discriminator_downsample: tuple[bool, ...] | None = None  # downsample_cfg; None: the default for the scale
    from_config: bool = False


@dataclass(frozen=True)
class ResBlock:
    """One residual block's channels; attention blocks are (channels, channels, attention=True)."""

    in_channels: int
    out_channels: int
    hidden_channels: int
    attention: bool = False
    shortcut: bool = True


@dataclass(frozen=True)
class GeneratorConfig:
    """SNGANGenerator as its shapes describe it: blocks up-sample 2x each, from input_scale."""

    noise_size: int
    input_scale: int
    num_classes: int  # 0 when norms are not class-conditional
    conditional_norm: bool  # SNConditionNorm with embeddings (use_cbn)
    norm_affine: bool  # BN with weight and bias (use_cbn False, or cbn_norm_affine)
    blocks: tuple[ResBlock, ...]

    @property
    def resolution(self) -> int:
        """output_scale."""
        return self.input_scale * 2 ** sum(not block.attention for block in self.blocks)

    def attention_sides(self) -> list[int]:
        """Side of the map each attention layer reads."""
        sides, side = [], self.input_scale
        for block in self.blocks:
            side, sides = (side, sides + [side]) if block.attention else (side * 2, sides)
        return sides


@dataclass(frozen=True)
class DiscriminatorConfig:
    """ProjDiscriminator: from_rgb (always halves), then blocks; downsample per residual block."""

    input_scale: int
    base_channels: int
    num_classes: int
    blocks: tuple[ResBlock, ...]
    downsample: tuple[bool, ...]

    def attention_sides(self) -> list[int]:
        """Side of the map each attention layer reads."""
        sides, side, flags = [], self.input_scale // 2, iter(self.downsample)
        for block in self.blocks:
            if block.attention:
                sides.append(side)
            elif next(flags):
                side //= 2
        return sides


def _blocks(shapes: dict[str, tuple[int, ...]], prefix: str, path: Path) -> tuple[ResBlock, ...]:
    indices = sorted({int(m.group(1)) for key in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", key))})
    if indices != list(range(len(indices))):
        raise refuse(path, f"{prefix} are numbered {indices[:12]}, not 0, 1, 2, ...")
    blocks = []
    for index in indices:
        name = f"{prefix}.{index}"
        first, second, query = (shapes.get(f"{name}.{part}.weight") for part in ("conv_1", "conv_2", "g"))
        if first is not None and second is not None and len(first) == len(second) == 4:
            blocks.append(ResBlock(first[1], second[0], first[0], shortcut=f"{name}.shortcut.weight" in shapes))
        elif query is not None and len(query) == 4:
            if query[1] < 8:
                raise refuse(path, f"{name} is a SelfAttentionBlock of {query[1]} channels (fewer than 8)")
            blocks.append(ResBlock(query[1], query[1], query[1], attention=True))
        else:
            raise refuse(path, f"{name} is neither a residual block nor a SelfAttentionBlock")
    if any(not 1 <= c <= MAX_CHANNELS for b in blocks for c in (b.in_channels, b.out_channels, b.hidden_channels)):
        raise refuse(path, f"{prefix} have channel counts beyond {MAX_CHANNELS}")
    return tuple(blocks)


def _chained(blocks, channels: int, path: Path, what: str) -> int:
    for index, block in enumerate(blocks):
        if block.in_channels != channels:
            raise refuse(path, f"{what}.{index} takes {block.in_channels} channels after {channels}")
        channels = block.out_channels
    return channels


def generator_config(shapes: dict[str, tuple[int, ...]], path: Path) -> GeneratorConfig:
    """SNGANGenerator's architecture from its (folded) shapes; CheckpointError when mmgen would not build it."""
    linear = shapes.get("noise2feat.weight")
    blocks = _blocks(shapes, "conv_blocks", path)
    if linear is None or len(linear) != 2 or not blocks or blocks[0].attention:
        raise refuse(path, "its generator has no noise2feat layer or starts without a residual block "
                           "(not an SNGAN/SAGAN generator: mmgen's BigGAN and StyleGANs are not read here)")
    if not all(block.shortcut for block in blocks if not block.attention):
        raise refuse(path, "a generator block has no shortcut, so it does not up-sample, which is not supported")
    input_scale = round((linear[0] / blocks[0].in_channels) ** 0.5)
    if input_scale < 1 or input_scale ** 2 * blocks[0].in_channels != linear[0] or not 1 <= linear[1] <= MAX_NOISE:
        raise refuse(path, f"noise2feat {linear} does not feed {blocks[0].in_channels} channels on a square grid")
    last = _chained(blocks, blocks[0].in_channels, path, "generator.conv_blocks")
    if shapes.get("to_rgb.conv.weight") != (3, last, 3, 3):
        raise refuse(path, f"to_rgb.conv is {shapes.get('to_rgb.conv.weight')}, not (3, {last}, 3, 3)")
    embedding = shapes.get("conv_blocks.0.norm_1.weight_embedding.weight")
    num_classes = embedding[0] if embedding else 0
    config = GeneratorConfig(linear[1], input_scale, num_classes, embedding is not None,
                             "conv_blocks.0.norm_1.norm.weight" in shapes, blocks)
    if not 0 <= num_classes <= MAX_CLASSES or config.resolution > MAX_RESOLUTION:
        raise refuse(path, f"{num_classes} classes or a {config.resolution}px output are out of range")
    return config


def discriminator_config(shapes: dict[str, tuple[int, ...]], scale: int, settings: Settings,
                         path: Path) -> DiscriminatorConfig:
    """ProjDiscriminator's architecture for images of this scale; CheckpointError when it does not fit."""
    head = shapes.get("from_rgb.conv_1.weight")
    blocks = _blocks(shapes, "conv_blocks", path)
    if head is None or head[1:] != (3, 3, 3):
        raise refuse(path, "its discriminator has no from_rgb block reading RGB")
    last = _chained(blocks, head[0], path, "discriminator.conv_blocks")
    convs = [block for block in blocks if not block.attention]
    downsample = settings.discriminator_downsample or D_DOWNSAMPLE.get(scale)
    if downsample is None or len(downsample) != len(convs):
        raise refuse(path, f"its discriminator has {len(convs)} residual blocks; the down-sampling for {scale}px "
                           f"is {downsample} (give downsample_cfg in the meta config)")
    for index, (block, down) in enumerate(zip(convs, downsample)):
        if block.shortcut != (down or block.in_channels != block.out_channels):
            raise refuse(path, f"discriminator block {index} {'has' if block.shortcut else 'lacks'} a shortcut "
                               f"conv, which down-sampling {down} contradicts")
    if shapes.get("decision.weight") != (1, last):
        raise refuse(path, f"decision is {shapes.get('decision.weight')}, not (1, {last})")
    projection = shapes.get("proj_y.weight")
    if projection is not None and (len(projection) != 2 or projection[1] != last):
        raise refuse(path, f"proj_y is {projection}, not (classes, {last})")
    return DiscriminatorConfig(scale, head[0], projection[0] if projection else 0, blocks, tuple(downsample))


class ConditionNorm(nn.Module):
    """SNConditionNorm: BN, then (optionally 1 +) weight_embedding(y) and bias_embedding(y)."""

    def __init__(self, channels: int, config: GeneratorConfig, settings: Settings) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, eps=settings.norm_eps, affine=config.norm_affine)
        self.reweight = settings.reweight_embedding
        if config.conditional_norm:
            self.weight_embedding = nn.Embedding(config.num_classes, channels)
            self.bias_embedding = nn.Embedding(config.num_classes, channels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W), labels (B,) class indices."""
        out = self.norm(x)
        if not hasattr(self, "weight_embedding"):
            return out
        weight = self.weight_embedding(labels)[:, :, None, None] + (1.0 if self.reweight else 0.0)
        return out * weight + self.bias_embedding(labels)[:, :, None, None]


class GenResBlock(nn.Module):
    """SNGANGenResBlock: norm, ReLU, 2x nearest, 3x3 conv, norm, ReLU, 3x3 conv; shortcut 2x then 1x1."""

    def __init__(self, block: ResBlock, config: GeneratorConfig, settings: Settings) -> None:
        super().__init__()
        self.norm_1 = ConditionNorm(block.in_channels, config, settings)
        self.norm_2 = ConditionNorm(block.hidden_channels, config, settings)
        self.conv_1 = nn.Conv2d(block.in_channels, block.hidden_channels, 3, padding=1)
        self.conv_2 = nn.Conv2d(block.hidden_channels, block.out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(block.in_channels, block.out_channels, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
        out = F.interpolate(F.relu(self.norm_1(x, labels)), scale_factor=2, mode="nearest")
        out = self.conv_2(F.relu(self.norm_2(self.conv_1(out), labels)))
        return out + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ToRGB(nn.Module):
    """mmcv ConvModule in order (norm, act, conv): BN, ReLU, 3x3 conv to RGB."""

    def __init__(self, channels: int, settings: Settings) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=settings.norm_eps)
        self.conv = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 3, H, W), before tanh."""
        return self.conv(F.relu(self.bn(x)))


def attention_block(channels: int) -> SelfAttention:
    """mmgen's SelfAttentionBlock: BigGAN's layer (pooled keys and values, output conv), no biases."""
    return SelfAttention(channels, variant="official", spectral=False, bias=False)


def attention_layers_of(blocks: nn.ModuleList) -> list[tuple[str, SelfAttention]]:
    """[("attn0", layer), ...] in forward order."""
    layers = [block for block in blocks if isinstance(block, SelfAttention)]
    return [(f"attn{index}", layer) for index, layer in enumerate(layers)]


class MMGenGenerator(nn.Module):
    """noise (B, noise_size), class indices (B,) or None -> images (B, 3, R, R) in [-1, 1]."""

    def __init__(self, config: GeneratorConfig, settings: Settings) -> None:
        super().__init__()
        self.config = config
        self.noise2feat = nn.Linear(config.noise_size, config.input_scale ** 2 * config.blocks[0].in_channels)
        self.conv_blocks = nn.ModuleList(attention_block(b.in_channels) if b.attention else
                                         GenResBlock(b, config, settings) for b in config.blocks)
        self.to_rgb = ToRGB(config.blocks[-1].out_channels, settings)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images."""
        x = self.noise2feat(noise).reshape(noise.shape[0], -1, self.config.input_scale, self.config.input_scale)
        for block in self.conv_blocks:
            x = block(x) if isinstance(block, SelfAttention) else block(x, labels)
        return torch.tanh(self.to_rgb(x))

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """The SelfAttention layers in forward order."""
        return attention_layers_of(self.conv_blocks)


class DiscResBlock(nn.Module):
    """SNGANDiscResBlock (or the head block, SNGANDiscHeadResBlock, when head=True)."""

    def __init__(self, block: ResBlock, down: bool, inplace_relu: bool, head: bool = False) -> None:
        super().__init__()
        self.down, self.inplace_relu, self.head = down, inplace_relu, head
        self.conv_1 = nn.Conv2d(block.in_channels, block.hidden_channels, 3, padding=1)
        self.conv_2 = nn.Conv2d(block.hidden_channels, block.out_channels, 3, padding=1)
        if block.shortcut:
            self.shortcut = nn.Conv2d(block.in_channels, block.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        if self.head:  # conv first; the shortcut pools, then convolves
            out = F.avg_pool2d(self.conv_2(F.relu(self.conv_1(x))), 2)
            return out + self.shortcut(F.avg_pool2d(x, 2))
        activated = F.relu(x)
        # with act_cfg inplace=True, mmgen's `out = self.activate(x)` rewrites x, and its shortcut reads relu(x)
        skip = activated if self.inplace_relu else x
        out = self.conv_2(F.relu(self.conv_1(activated)))
        if hasattr(self, "shortcut"):
            skip = self.shortcut(skip)
        if self.down:  # a down-sampling block always has its shortcut conv (learnable_sc)
            out, skip = F.avg_pool2d(out, 2), F.avg_pool2d(skip, 2)
        return out + skip


class MMGenDiscriminator(nn.Module):
    """Images (B, 3, R, R), class indices (B,) -> scores (B,), with the projection term when it has classes."""

    def __init__(self, config: DiscriminatorConfig, settings: Settings) -> None:
        super().__init__()
        self.config = config
        width = config.base_channels
        self.from_rgb = DiscResBlock(ResBlock(3, width, width), True, False, head=True)
        flags, blocks = iter(config.downsample), []
        for block in config.blocks:
            blocks.append(attention_block(block.in_channels) if block.attention else
                          DiscResBlock(block, next(flags), settings.discriminator_inplace_relu))
            width = block.out_channels
        self.conv_blocks = nn.ModuleList(blocks)
        self.decision = nn.Linear(width, 1)
        if config.num_classes:
            self.proj_y = nn.Embedding(config.num_classes, width)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """ProjDiscriminator's output, one score per image."""
        h = self.from_rgb(images)
        for block in self.conv_blocks:
            h = block(h)
        h = torch.sum(F.relu(h), dim=[2, 3])  # (B, C)
        out = self.decision(h)[:, 0]
        if self.config.num_classes:
            out = out + torch.sum(self.proj_y(labels) * h, dim=1)
        return out

    def attention_layers(self) -> list[tuple[str, SelfAttention]]:
        """The SelfAttention layers in forward order."""
        return attention_layers_of(self.conv_blocks)


def build(make_network, folded: dict[str, torch.Tensor], path: Path, what: str, device: torch.device) -> nn.Module:
    """make_network() on the meta device, keys and shapes compared with folded, then loaded; eval, no gradients."""
    with torch.device("meta"):  # nothing allocated until the weights are known to fit
        network = make_network()
    expected = {key: tuple(t.shape) for key, t in network.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(folded)), sorted(set(folded) - set(expected))
    if missing or unexpected:
        named = [[f"{what}.{their_key(key)}" for key in keys[:4]] for keys in (missing, unexpected)]
        raise refuse(path, f"its {what} keys do not fit the architecture its shapes imply: missing "
                           f"{named[0]}{' ...' * (len(missing) > 4)}, unexpected {named[1]}"
                           f"{' ...' * (len(unexpected) > 4)}")
    for key, shape in expected.items():
        if tuple(folded[key].shape) != shape:
            raise refuse(path, f"{what}.{their_key(key)} has shape {tuple(folded[key].shape)}, the architecture "
                               f"needs {shape}")
    network.load_state_dict(folded, strict=True, assign=True)
    return network.requires_grad_(False).to(device=device, dtype=torch.float32).eval()


__all__ = ["DiscriminatorConfig", "GeneratorConfig", "MMGenDiscriminator", "MMGenGenerator", "Settings", "build",
           "discriminator_config", "generator_config", "our_key", "refuse"]

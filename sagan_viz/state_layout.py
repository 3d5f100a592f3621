"""The state-dict keys, shapes and dtypes of a ModelConfig's G and D, computed without building them.

The loader compares a file's tensor table with this before it allocates anything: building the networks
costs time and memory in proportion to the config, which a hostile file chooses (and on the meta device
spectral norm's initial power iterations take seconds). tests/test_checkpoint.py holds this table to
Generator(config).state_dict() and Discriminator(config).state_dict() for many configs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ModelConfig, discriminator_resolutions, feature_channels, generator_resolutions

SPECTRAL_WEIGHT = ".parametrizations.weight.original"  # torch's spectral-norm parametrisation keys
SPECTRAL_U = ".parametrizations.weight.0._u"
SPECTRAL_V = ".parametrizations.weight.0._v"


@dataclass(frozen=True)
class TensorSpec:
    """What one state-dict entry must be: its shape, and whether it is a float or a counter (int64)."""

    shape: tuple[int, ...]
    floating: bool = True


def _spectral(prefix: str, weight_shape: tuple[int, ...], bias: bool) -> dict[str, TensorSpec]:
    """torch's spectral_norm keys: W, u over output rows, v over the flattened rest; and the bias."""
    specs = {f"{prefix}{SPECTRAL_WEIGHT}": TensorSpec(weight_shape),
             f"{prefix}{SPECTRAL_U}": TensorSpec(weight_shape[:1]),
             f"{prefix}{SPECTRAL_V}": TensorSpec((math.prod(weight_shape[1:]),))}
    if bias:
        specs = {f"{prefix}.bias": TensorSpec(weight_shape[:1]), **specs}
    return specs


def _conv(prefix: str, in_channels: int, out_channels: int, kernel_size: int = 3) -> dict[str, TensorSpec]:
    return _spectral(prefix, (out_channels, in_channels, kernel_size, kernel_size), bias=True)


def _batch_norm(prefix: str, channels: int, affine: bool) -> dict[str, TensorSpec]:
    specs = {f"{prefix}.weight": TensorSpec((channels,)), f"{prefix}.bias": TensorSpec((channels,))} if affine else {}
    return {**specs, f"{prefix}.running_mean": TensorSpec((channels,)), f"{prefix}.running_var": TensorSpec((channels,)),
            f"{prefix}.num_batches_tracked": TensorSpec((), floating=False)}


def _conditional_batch_norm(prefix: str, channels: int, num_classes: int) -> dict[str, TensorSpec]:
    specs = _batch_norm(f"{prefix}.norm", channels, affine=num_classes == 0)
    if num_classes > 0:
        specs.update(_spectral(f"{prefix}.gain", (num_classes, channels), bias=False))
        specs.update(_spectral(f"{prefix}.bias", (num_classes, channels), bias=False))
    return specs


def _attention(prefix: str, channels: int, variant: str) -> dict[str, TensorSpec]:
    reduced, value_channels = channels // 8, channels if variant == "paper" else channels // 2
    specs = {f"{prefix}.gamma": TensorSpec((1,))}
    for name, out_channels, in_channels in [("f", reduced, channels), ("g", reduced, channels),
                                            ("h", value_channels, channels)]:
        specs.update(_spectral(f"{prefix}.{name}", (out_channels, in_channels, 1, 1), bias=False))
    if variant == "official":
        specs.update(_spectral(f"{prefix}.v", (channels, value_channels, 1, 1), bias=False))
    return specs


def generator_layout(config: ModelConfig) -> dict[str, TensorSpec]:
    """Generator(config).state_dict(): key -> TensorSpec."""
    base, resolution = config.g_channels, config.resolution
    channels = feature_channels(base, resolution, 4)
    specs = _spectral("linear", (4 * 4 * channels, config.z_dim), bias=True)
    stage = 0
    for size in generator_resolutions(resolution):
        out_channels = feature_channels(base, resolution, size)
        prefix = f"stages.{stage}"
        specs.update(_conditional_batch_norm(f"{prefix}.norm1", channels, config.num_classes))
        specs.update(_conv(f"{prefix}.conv1", channels, out_channels))
        specs.update(_conditional_batch_norm(f"{prefix}.norm2", out_channels, config.num_classes))
        specs.update(_conv(f"{prefix}.conv2", out_channels, out_channels))
        specs.update(_conv(f"{prefix}.shortcut", channels, out_channels, kernel_size=1))
        stage += 1
        if size in config.g_attention:
            specs.update(_attention(f"stages.{stage}", out_channels, config.attention_variant))
            stage += 1
        channels = out_channels
    specs.update(_batch_norm("output_norm", channels, affine=True))
    specs.update(_conv("output_conv", channels, config.image_channels))
    return specs


def discriminator_layout(config: ModelConfig) -> dict[str, TensorSpec]:
    """Discriminator(config).state_dict(): key -> TensorSpec."""
    base, resolution = config.d_channels, config.resolution
    specs: dict[str, TensorSpec] = {}
    channels, stage = config.image_channels, 0
    for size in discriminator_resolutions(resolution):
        out_channels = feature_channels(base, resolution, size)
        specs.update(_conv(f"stages.{stage}.conv1", channels, out_channels))
        specs.update(_conv(f"stages.{stage}.conv2", out_channels, out_channels))
        specs.update(_conv(f"stages.{stage}.shortcut", channels, out_channels, kernel_size=1))
        stage += 1
        if size in config.d_attention:
            specs.update(_attention(f"stages.{stage}", out_channels, config.attention_variant))
            stage += 1
        channels = out_channels
    specs.update(_spectral("linear", (1, channels), bias=True))
    if config.conditional:
        specs.update(_spectral("embedding", (config.num_classes, channels), bias=False))
    return specs


def checkpoint_layout(config: ModelConfig) -> dict[str, dict[str, TensorSpec]]:
    """Part ("G", "G_ema", "D") -> key -> TensorSpec: what a checkpoint of this config holds."""
    generator = generator_layout(config)
    return {"G": generator, "G_ema": generator, "D": discriminator_layout(config)}


def element_count(layout: dict[str, dict[str, TensorSpec]]) -> int:
    """How many numbers the layout holds in all."""
    return sum(math.prod(spec.shape) for part in layout.values() for spec in part.values())


__all__ = ["SPECTRAL_U", "SPECTRAL_V", "SPECTRAL_WEIGHT", "TensorSpec", "checkpoint_layout", "discriminator_layout",
           "element_count", "generator_layout"]

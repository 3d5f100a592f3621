"""Pretrained BigGAN-deep (ImageNet, 128/256/512) in the layout of the pytorch-pretrained-biggan package:
a folder with config.json and pytorch_model.bin (DeepMind's TF Hub weights, EMA, converted)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..latents import truncated_latent
from .biggan_deep_networks import (
    BigGANDeepConfig,
    build_biggan_deep,
    find_biggan_deep_files,
    read_biggan_deep,
    read_biggan_deep_config,
)
from .interface import LoadedModel, ModelSummary, TruncationRange

FAMILY = "biggan-deep"
TRUNCATION = TruncationRange(default=0.4)  # the package README's value; its BN statistics cover (0, 1]


def class_names(num_classes: int) -> tuple[str, ...] | None:
    """ImageNet's class names for a 1,000-class model; None otherwise (classes are then numbered)."""
    from ..imagenet_classes import IMAGENET_CLASS_COUNT, imagenet_classes

    if num_classes != IMAGENET_CLASS_COUNT:
        return None
    return tuple(entry.names[0] for entry in imagenet_classes())


class BigGANDeepModel(LoadedModel):
    """BigGAN-deep's generator (the public files hold no discriminator and no training history)."""

    family = FAMILY

    def __init__(self, path: Path, config: BigGANDeepConfig, state_dict: dict[str, torch.Tensor],
                 device: torch.device) -> None:
        generator = build_biggan_deep(config, state_dict, device)
        super().__init__(path, device, {"ema": generator}, None, resolution=config.resolution, z_dim=config.z_dim,
                         num_classes=config.num_classes, class_names=class_names(config.num_classes),
                         truncation=TRUNCATION)
        self.config = config

    @property
    def name(self) -> str:
        """The model's folder, e.g. 'biggan-deep-128'."""
        return self.path.name if self.path.is_dir() else f"{self.path.parent.name}/{self.path.name}"

    def latent(self, seed: int, truncation: float | None) -> torch.Tensor:
        """truncation × z, z from the normal truncated to [-2, 2] (the package's truncated_noise_sample)."""
        return truncated_latent(seed, self.config.z_dim, truncation)

    def label_tensor(self, labels: list[int] | None) -> torch.Tensor | None:
        """One-hot class vectors (B, num_classes), as the package's one_hot_from_int makes them."""
        if labels is None:
            return None
        return torch.nn.functional.one_hot(torch.tensor(labels), self.num_classes).float().to(self.device)

    def run_generator(self, generator, z, labels, truncation):
        """G(z, class vector, truncation)."""
        return generator(z, labels, truncation)

    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """One attention layer, before the block the config names."""
        size = self.config.attention_resolution
        return {"G.attn0": (size, size)}

    def report(self) -> str:
        """Markdown description of the import."""
        info = self.attention_layers()[0]
        return (f"**{FAMILY}** generator, {self.resolution}×{self.resolution}, {self.num_classes} classes, "
                f"channel width {self.config.channel_width}; G.attn0 reads a {info.query_shape[0]}×{info.query_shape[1]} "
                f"map, its β rows live on the {info.key_shape[0]}×{info.key_shape[1]} grid of 2×2 max-pooled keys. "
                "Spectral norm folded into plain weights with the stored u, v (as the package computes in eval "
                "mode); batch-norm statistics kept per truncation. The file has no discriminator, no raw G "
                "(the weights are the EMA) and no training history.")


def claims(path: Path) -> bool:
    """A folder holding config.json or pytorch_model.bin, or a .bin file."""
    if path.is_dir():
        return (path / "config.json").is_file() or (path / "pytorch_model.bin").is_file()
    return path.suffix == ".bin"


def summarise(path: Path) -> ModelSummary:
    """From config.json alone."""
    config_path, _ = find_biggan_deep_files(path)
    config = read_biggan_deep_config(config_path)
    return ModelSummary(path=path, family=FAMILY, run=path.name if path.is_dir() else path.parent.name, step=None,
                        layers=("G.attn0",), resolution=config.resolution, num_classes=config.num_classes,
                        class_names=class_names(config.num_classes), truncation=TRUNCATION)


def open_model(path: Path, device: torch.device) -> BigGANDeepModel:
    """Read, validate, fold spectral norm and build (CheckpointError on a bad file)."""
    config, state_dict = read_biggan_deep(path)
    return BigGANDeepModel(path, config, state_dict, device)


__all__ = ["FAMILY", "BigGANDeepModel", "CheckpointError", "claims", "open_model", "summarise"]

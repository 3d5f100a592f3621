"""This project's own SAGAN checkpoints (.safetensors written by training/): G, EMA-G, D and history."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import FORMAT_TAG, CheckpointContents, build_networks_from, read_checkpoint, read_checkpoint_summary
from ..config import ModelConfig, discriminator_resolutions, generator_resolutions
from ..layer_names import layer_name
from ..networks import fold_spectral_norm
from .interface import LoadedModel, ModelSummary

FAMILY = "sagan-viz"


def query_shapes(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """Layer name -> the (H, W) feature map it reads, from the config alone."""
    shapes = {}
    for network, sizes, allowed in (("G", config.g_attention, generator_resolutions(config.resolution)),
                                    ("D", config.d_attention, discriminator_resolutions(config.resolution))):
        for index, size in enumerate(size for size in allowed if size in sizes):
            shapes[layer_name(network, index)] = (size, size)
    return shapes


class SaganModel(LoadedModel):
    """A sagan-viz checkpoint: EMA-G ('ema'), the raw G of the last step ('raw') and D."""

    family = FAMILY
    weight_choices = ("ema", "raw")

    def __init__(self, contents: CheckpointContents, device: torch.device) -> None:
        # Viewed, never trained: σ folded into the weights (bit for bit what each forward computed; ~20% of a generate)
        generator_raw, generator_ema, discriminator = map(fold_spectral_norm, build_networks_from(contents, device))
        config = contents.config
        super().__init__(contents.path, device, {"ema": generator_ema, "raw": generator_raw}, discriminator,
                         resolution=config.resolution, z_dim=config.z_dim, num_classes=config.num_classes,
                         step=contents.step, history=contents.history)
        self.config = config
        self.dataset = contents.dataset
        self.wall_time_s = contents.wall_time_s

    @property
    def generator_raw(self) -> nn.Module:
        """The raw G of the last training step."""
        return self.generators["raw"]

    @property
    def name(self) -> str:
        """Run folder / file name, and step."""
        return f"{self.path.parent.name}/{self.path.stem} (step {self.step})"

    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """From the checkpoint's config."""
        return query_shapes(self.config)

    def report(self) -> str:
        """Markdown description of the checkpoint."""
        layers = self.layers_text()
        classes = f"{self.num_classes} classes" if self.conditional else "unconditional"
        return (f"**{FAMILY}** checkpoint, step {self.step}, trained on `{self.dataset}`: "
                f"{self.resolution}×{self.resolution}, {classes}, {self.config.attention_variant} attention; "
                f"layers: {layers or 'none'}. Holds EMA-G, G, D and the training history; "
                "spectral norm is kept as torch's parametrisation.")


def claims(path: Path) -> bool:
    """A .safetensors file: this family's own format (its header says which)."""
    return path.is_file() and path.suffix == ".safetensors"


def summarise(path: Path) -> ModelSummary:
    """From the header alone (raises CheckpointError on a bad file)."""
    summary = read_checkpoint_summary(path)
    config = summary.config
    return ModelSummary(path=path, family=FAMILY, run=path.parent.name, step=summary.step,
                        layers=tuple(query_shapes(config)), resolution=config.resolution,
                        num_classes=config.num_classes, weight_choices=SaganModel.weight_choices)


def open_model(path: Path, device: torch.device) -> SaganModel:
    """Read, validate and build (raises CheckpointError on a bad file)."""
    return SaganModel(read_checkpoint(path), device)


__all__ = ["FAMILY", "FORMAT_TAG", "SaganModel", "claims", "open_model", "query_shapes", "summarise"]

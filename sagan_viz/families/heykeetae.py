"""heykeetae/Self-Attention-GAN checkpoints: {step}_G.pth and {step}_D.pth beside it (bare state dicts, 64x64,
unconditional), as their trainer.py saves them every model_save_step."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from .heykeetae_networks import (
    FORMAT,
    NUM_BATCHES_TRACKED,
    RESOLUTION,
    HeykeetaeDiscriminator,
    HeykeetaeGenerator,
    discriminator_shapes,
    generator_shapes,
    infer_discriminator_conv_dim,
    infer_shapes,
    prepare_state,
)
from .interface import LoadedModel, ModelSummary
from .state_files import build, check_state_dict, read_state_dict, state_keys

FAMILY = "heykeetae"
FILE_NAME = re.compile(r"^(\d+)_([GD])\.pth$")  # trainer.py: '{}_G.pth'.format(step + 1)
# Their trainer samples with G in train mode: batch-norm statistics of the 64-image batch (batch_size 64 by
# default). "train-bn" puts the image among 63 fixed companion latents, so it depends on its z alone.
TRAIN_BN_BATCH = 64
TRAIN_BN_SEED = 20180615
QUERY_SHAPES = {"G.attn0": (16, 16), "G.attn1": (32, 32), "D.attn0": (8, 8), "D.attn1": (4, 4)}


def step_of(path: Path) -> int | None:
    """The step in '1000_G.pth', or None for a file named otherwise."""
    match = FILE_NAME.match(path.name)
    return int(match.group(1)) if match else None


def discriminator_path(path: Path) -> Path | None:
    """{step}_D.pth beside {step}_G.pth, when there is one."""
    match = FILE_NAME.match(path.name)
    if match is None:
        return None
    candidate = path.with_name(f"{match.group(1)}_D.pth")
    return candidate if candidate.is_file() else None


def train_bn_companions(z_dim: int) -> torch.Tensor:
    """The 63 fixed latents (63, z_dim) that share the batch statistics with an image in 'train-bn' mode."""
    return torch.randn(TRAIN_BN_BATCH - 1, z_dim, generator=torch.Generator().manual_seed(TRAIN_BN_SEED))


def _is_discriminator(state: dict[str, torch.Tensor]) -> bool:
    """D's first convolution reads RGB and D has no batch norm; G's first is a ConvTranspose2d from z."""
    first = state.get("l1.0.module.weight_bar")
    has_norm = any(key.endswith("running_mean") for key in state)
    return first is not None and first.dim() == 4 and first.shape[1] == 3 and not has_norm


def read_generator(path: Path, mmap: bool = True) -> tuple[dict[str, torch.Tensor], int, int]:
    """(state, z_dim, conv_dim) of a {step}_G.pth; CheckpointError names a discriminator given instead."""
    state = read_state_dict(path, FORMAT, mmap)
    if not any(key.endswith("weight_bar") for key in state):
        raise CheckpointError(f"{path}: looks like {FORMAT} (by its name), but it has no weight_bar keys (their "
                              f"SpectralNorm's): keys start {sorted(state)[:3]}")
    if _is_discriminator(state):
        hint = f" ({path.name.replace('_D.', '_G.')} beside it)" if FILE_NAME.match(path.name) else ""
        raise CheckpointError(f"{path}: looks like {FORMAT}, but it is their discriminator; open the generator"
                              f"{hint}")
    z_dim, conv_dim = infer_shapes(state, path)
    return state, z_dim, conv_dim


class HeykeetaeModel(LoadedModel):
    """Their G (the raw weights of the step: they keep no EMA), with D when {step}_D.pth sits beside it.

    weights "raw": batch norm in eval mode (running statistics), the default. "train-bn": batch statistics,
    as their trainer samples (G.train() on a 64-image batch): the image is the first of a batch with 63
    fixed companion latents.
    """

    family = FAMILY
    weight_choices = ("raw", "train-bn")

    def __init__(self, path: Path, device: torch.device) -> None:
        state, z_dim, conv_dim = read_generator(path, mmap=False)
        what = f"{FORMAT} (their generator)"
        folded = prepare_state(state, generator_shapes(z_dim, conv_dim), path, what)
        generators = {name: build(HeykeetaeGenerator(z_dim, conv_dim, batch_statistics=name == "train-bn"),
                                  folded, device) for name in self.weight_choices}
        self.discriminator_file = discriminator_path(path)
        discriminator = None
        if self.discriminator_file is not None:
            discriminator = self._read_discriminator(self.discriminator_file, device)
        super().__init__(path, device, generators, discriminator, resolution=RESOLUTION, z_dim=z_dim,
                         num_classes=0, step=step_of(path))
        self.conv_dim = conv_dim
        self.companions = train_bn_companions(z_dim).to(device)

    @staticmethod
    def _read_discriminator(path: Path, device: torch.device) -> HeykeetaeDiscriminator:
        what = f"{FORMAT} (their discriminator)"
        state = read_state_dict(path, what, mmap=False)
        conv_dim = infer_discriminator_conv_dim(state, path)
        folded = prepare_state(state, discriminator_shapes(conv_dim), path, what)
        return build(HeykeetaeDiscriminator(conv_dim), folded, device)

    def run_generator(self, generator, z, labels, truncation):
        """G(z); under 'train-bn' each image is normalised with its 63 companions' batch statistics."""
        if generator is self.generators["raw"]:
            return generator(z)
        images = [generator(torch.cat([row[None], self.companions]))[:1] for row in z]  # (1, 3, 64, 64) each
        return torch.cat(images)

    def run_discriminator(self, images, labels):
        """D(images): (B,) scores (their D has no batch norm)."""
        return self.discriminator(images)

    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """G's attn1 (16x16) and attn2 (32x32) as G.attn0, G.attn1; D's (8x8, 4x4) when D is there."""
        return {name: shape for name, shape in QUERY_SHAPES.items()
                if name.startswith("G") or self.discriminator is not None}

    def report(self) -> str:
        """Markdown description of the import."""
        layers = self.layers_text()
        lacks = ["EMA-G (their trainer keeps none)", "training history"]
        if self.discriminator is None:
            lacks.insert(0, "discriminator (no _D.pth beside it)")
        step = "" if self.step is None else f", step {self.step}"
        return (f"**{FAMILY}** (heykeetae/Self-Attention-GAN) generator{step}: "
                f"{self.resolution}×{self.resolution}, unconditional, z_dim {self.z_dim}, conv_dim {self.conv_dim}; "
                f"layers: {layers}. Their spectral norm (weight_bar, u, v) was folded into plain weights as their "
                "forward computes it on the first call after loading: one power iteration from the stored u, "
                "then W / (uᵀ W v), with W reshaped to (weight.shape[0], -1) also for ConvTranspose2d. Batch norm: "
                "'raw' uses the running statistics (eval mode, the default); 'train-bn' uses batch statistics as "
                f"their trainer samples, the image sharing its batch with {TRAIN_BN_BATCH - 1} fixed latents. "
                f"The files have no {', no '.join(lacks)}.")


def claims(path: Path) -> bool:
    """A {step}_G.pth / {step}_D.pth, or a .pth/.pt state dict whose keys end in weight_bar (their SpectralNorm)."""
    if not path.is_file() or path.suffix not in (".pth", ".pt"):
        return False
    return bool(FILE_NAME.match(path.name)) or any(key.endswith("weight_bar") for key in state_keys(path))


def summarise(path: Path) -> ModelSummary:
    """From key names and shapes (memory-mapped, no tensor data read)."""
    state, z_dim, conv_dim = read_generator(path, mmap=True)
    check_state_dict(state, generator_shapes(z_dim, conv_dim), path, f"{FORMAT} (their generator)",
                     optional=NUM_BATCHES_TRACKED, values=False)
    has_discriminator = discriminator_path(path) is not None
    layers = tuple(name for name in QUERY_SHAPES if name.startswith("G") or has_discriminator)
    return ModelSummary(path=path, family=FAMILY, run=path.parent.name, step=step_of(path), layers=layers,
                        resolution=RESOLUTION, weight_choices=HeykeetaeModel.weight_choices)


def open_model(path: Path, device: torch.device) -> HeykeetaeModel:
    """Read, validate, fold spectral norm and build G (and D beside it); CheckpointError on a bad file."""
    return HeykeetaeModel(path, device)


__all__ = ["FAMILY", "HeykeetaeModel", "claims", "open_model", "summarise", "train_bn_companions"]

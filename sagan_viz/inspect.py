"""Run a checkpoint and keep what a click needs: the image and beta of every attention layer."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .attention import SelfAttention
from .checkpoint import CheckpointContents, build_networks_from, read_checkpoint
from .devices import describe_device, resolve_device
from .imaging import to_uint8_images

WEIGHTS = ("ema", "raw")  # EMA-G (what the paper samples from) or the raw G of the last step


@dataclass
class LayerCapture:
    """One attention layer's view of one image."""

    name: str  # e.g. "G.attn0"
    features: torch.Tensor  # x, the layer's input: (C, H, W)
    attention: torch.Tensor  # beta: (N_query, N_key), each row sums to 1
    query_shape: tuple[int, int]  # (H, W)
    key_shape: tuple[int, int]  # (H, W), or pooled (H/2, W/2) for the official variant
    gamma: float


@dataclass
class Generation:
    """A generated image and everything computed with it, so a click never reruns the networks."""

    seed: int
    label: int | None
    weights: str
    image: np.ndarray  # (H, W, 3) uint8
    image_tensor: torch.Tensor  # (1, 3, H, W) in [-1, 1], as G produced it
    layers: dict[str, LayerCapture]  # G's layers first, then D's (run on this image)
    discriminator_score: float
    step: int | None = None  # training step of the checkpoint that made it
    gamma_overrides: dict[str, float] = field(default_factory=dict)  # layer -> gamma used instead of the learned one

    @property
    def attention(self) -> dict[str, torch.Tensor]:
        """Layer name -> beta (N_query, N_key)."""
        return {name: capture.attention for name, capture in self.layers.items()}


@contextmanager
def capture_attention(network: nn.Module, prefix: str):
    """Record input and beta of every SelfAttention in network during forward passes.

    Yields a dict filled as the network runs: "<prefix>.attnK" -> LayerCapture (batch element 0).
    """
    captured: dict[str, LayerCapture] = {}
    handles = []
    for name, layer in network.attention_layers():
        def hook(module: SelfAttention, inputs, output, full_name=f"{prefix}.{name}"):
            x = inputs[0].detach()
            captured[full_name] = LayerCapture(
                name=full_name,
                features=x[0],
                attention=module.attention_map(x[:1])[0].detach(),
                query_shape=tuple(x.shape[-2:]),
                key_shape=module.key_shape(*x.shape[-2:]),
                gamma=module.gamma.item(),
            )
        handles.append(layer.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def override_gamma(network: nn.Module, prefix: str, values: dict[str, float]):
    """Set gamma of the named layers ("<prefix>.attnK" -> value) for the block; restored afterwards, even on error.

    Names of other networks' layers are skipped, so one dict can go to G and to D. Not thread-safe
    on its own: LoadedModel holds its lock around it.
    """
    layers = {f"{prefix}.{name}": layer for name, layer in network.attention_layers()}
    mine = {name: value for name, value in values.items() if name.startswith(f"{prefix}.")}
    unknown = sorted(set(mine) - set(layers))
    if unknown:
        raise ValueError(f"no attention layer {', '.join(unknown)}; layers: {', '.join(layers) or 'none'}")
    learned = {name: layers[name].gamma.detach().clone() for name in mine}
    try:
        with torch.no_grad():
            for name, value in mine.items():
                layers[name].gamma.fill_(float(value))
        yield
    finally:
        with torch.no_grad():
            for name, value in learned.items():
                layers[name].gamma.copy_(value)


def latent_for_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The z (1, z_dim) that a seed names; the same on every device and machine."""
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(seed)))


class LoadedModel:
    """A checkpoint ready to generate and inspect; networks in eval mode, no gradients on weights."""

    def __init__(self, contents: CheckpointContents, device: torch.device) -> None:
        self.path: Path = contents.path
        self.config = contents.config
        self.history = contents.history
        self.step = contents.step
        self.dataset = contents.dataset
        self.wall_time_s = contents.wall_time_s
        self.device = device
        self.generator_raw, self.generator, self.discriminator = build_networks_from(contents, device)
        self._lock = threading.Lock()  # capture hooks are per call: one forward at a time per model

    @property
    def name(self) -> str:
        """A label for lists: run folder / file name, and step."""
        return f"{self.path.parent.name}/{self.path.stem} (step {self.step})"

    @property
    def device_label(self) -> str:
        """Where the networks run, in words."""
        return describe_device(self.device)

    def attention_layer_names(self) -> list[str]:
        """['G.attn0', ..., 'D.attn0', ...]; empty for a model without attention."""
        return [f"G.{n}" for n, _ in self.generator.attention_layers()] + [
            f"D.{n}" for n, _ in self.discriminator.attention_layers()
        ]

    def generator_for(self, weights: str) -> nn.Module:
        """EMA-G ('ema', the default everywhere) or the raw G ('raw')."""
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        return self.generator if weights == "ema" else self.generator_raw

    def default_label(self, seed: int) -> int | None:
        """The class a seed draws when the model is conditional and none is given."""
        return seed % self.config.num_classes if self.config.conditional else None

    @contextmanager
    def gamma_overridden(self, weights: str = "ema", gamma: dict[str, float] | None = None):
        """Hold the model (one forward at a time) with some layers' gamma replaced; yields the chosen G.

        gamma maps layer names to values, e.g. {"G.attn0": 0.0}; every value is restored on exit.
        """
        gamma = dict(gamma or {})
        unknown = sorted(set(gamma) - set(self.attention_layer_names()))
        if unknown:
            known = ", ".join(self.attention_layer_names()) or "none: this model has no attention layers"
            raise ValueError(f"cannot set gamma of unknown layer {', '.join(unknown)}; layers: {known}")
        generator = self.generator_for(weights)
        with self._lock, override_gamma(generator, "G", gamma), override_gamma(self.discriminator, "D", gamma):
            yield generator

    @torch.no_grad()
    def generate(
        self, seed: int = 0, label: int | None = None, weights: str = "ema", gamma: dict[str, float] | None = None
    ) -> Generation:
        """Generate the image of a seed and capture beta of every attention layer in G and in D.

        gamma, e.g. {"G.attn0": 0.0}, replaces those layers' learned gamma for this call only.
        """
        if label is None:
            label = self.default_label(seed)
        elif not self.config.conditional:
            raise ValueError("this model is unconditional: it takes no class label")
        elif not 0 <= label < self.config.num_classes:
            raise ValueError(f"label {label} does not exist: the model has {self.config.num_classes} classes")
        labels = None if label is None else torch.tensor([label], device=self.device)
        z = latent_for_seed(seed, self.config.z_dim).to(self.device)
        with self.gamma_overridden(weights, gamma) as generator:
            with capture_attention(generator, "G") as g_layers:
                image = generator(z, labels)
            with capture_attention(self.discriminator, "D") as d_layers:
                score = self.discriminator(image, labels)
        return Generation(
            seed=seed, label=label, weights=weights, image=to_uint8_images(image)[0], image_tensor=image,
            layers={**g_layers, **d_layers}, discriminator_score=score.item(), step=self.step,
            gamma_overrides={name: float(value) for name, value in (gamma or {}).items()},
        )


def load_checkpoint(path: str | Path, device: str = "auto") -> LoadedModel:
    """Load a .safetensors checkpoint for generation and inspection (raises CheckpointError on a bad file)."""
    return LoadedModel(read_checkpoint(path), resolve_device(device))

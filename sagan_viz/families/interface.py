"""What every model family offers the rest of sagan-viz: inspection, figures, the app, the CLI and the
notebook API see only this, never which file format a model came from (stylegan3's one loader)."""
from __future__ import annotations

import difflib
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..attention import SelfAttention
from ..devices import describe_device
from ..imaging import to_uint8_images
from ..inspect import Generation, capture_layer_inputs, override_gamma
from ..latents import normal_latent
from ..layer_names import layer_name, parse_layer_name


@dataclass(frozen=True)
class AttentionLayerInfo:
    """An attention layer as lists and captions name it: where it sits and the grids of its β."""

    name: str  # e.g. "G.attn0"
    query_shape: tuple[int, int]  # (H, W) of the feature map it reads
    key_shape: tuple[int, int]  # (H, W) of the grid a β row lives on


@dataclass(frozen=True)
class TruncationRange:
    """The truncation trick a family supports: values in (0, maximum], and the default shown first."""

    default: float
    maximum: float = 1.0

    def check(self, value: float) -> float:
        """value as a float, or ValueError when outside (0, maximum]."""
        value = float(value)
        if not 0.0 < value <= self.maximum:
            raise ValueError(f"truncation must be in (0, {self.maximum:g}], got {value:g}")
        return value


@dataclass(frozen=True)
class ModelSummary:
    """A checkpoint as a list shows it, read from its header or config alone (no weights loaded)."""

    path: Path
    family: str  # e.g. "sagan-viz", "biggan-deep"
    run: str  # the folder it sits in, or the model's own name
    step: int | None  # training step, None when the file does not say
    layers: tuple[str, ...]  # attention layer names, G's first
    resolution: int
    num_classes: int = 0
    class_names: tuple[str, ...] | None = field(default=None, repr=False)  # None: classes are numbered
    truncation: TruncationRange | None = None  # None: the family has no truncation trick
    weight_choices: tuple[str, ...] = ("ema",)  # generators the file holds

    @property
    def has_attention(self) -> bool:
        """False for a baseline without self-attention."""
        return bool(self.layers)

    @property
    def conditional(self) -> bool:
        """True when the generator takes a class."""
        return self.num_classes > 0

    @property
    def label(self) -> str:
        """What a dropdown shows, e.g. 'faces32-sagan · step 4000 · 32px'."""
        step = "" if self.step is None else f" · step {self.step}"
        attention = "" if self.has_attention else " · no attention"
        return f"{self.run}{step}{attention} · {self.resolution}px"


class LoadedModel(ABC):
    """A model ready to generate and inspect; networks in eval mode, no gradients on weights.

    A family module subclasses this, builds its networks, and implements latent(), run_generator() and
    (when it has one) run_discriminator(); everything else is shared.
    """

    family: ClassVar[str]  # e.g. "sagan-viz"
    weight_choices: ClassVar[tuple[str, ...]] = ("ema",)  # names of the generators a file holds

    def __init__(self, path: Path, device: torch.device, generators: dict[str, nn.Module],
                 discriminator: nn.Module | None, *, resolution: int, z_dim: int, num_classes: int,
                 class_names: tuple[str, ...] | None = None, truncation: TruncationRange | None = None,
                 step: int | None = None, history=None) -> None:
        self.path = Path(path)
        self.device = device
        self.generators = generators
        self.discriminator = discriminator
        self.resolution = resolution
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.class_names = class_names
        self.truncation = truncation
        self.step = step
        self.history = history
        self._lock = threading.Lock()  # capture hooks and gamma overrides: one forward at a time per model

    # What a family implements, or keeps as most SAGANs have it.
    def latent(self, seed: int, truncation: float | None) -> torch.Tensor:
        """The z (1, z_dim) a seed names under this family's prior: N(0, I) unless the family says otherwise."""
        return normal_latent(seed, self.z_dim)

    def run_generator(self, generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
                      truncation: float | None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] from z (B, z_dim) and labels as label_tensor() makes them: G(z, labels)."""
        return generator(z, labels)

    def run_discriminator(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's scores (B,): D(images, labels); only called when the model has a discriminator."""
        if self.discriminator is None:
            raise NotImplementedError(f"{self.family} models have no discriminator")
        return self.discriminator(images, labels)

    @abstractmethod
    def query_shapes(self) -> dict[str, tuple[int, int]]:
        """Attention layer name -> (H, W) of the feature map it reads, G's layers first."""

    @abstractmethod
    def report(self) -> str:
        """Markdown: what was imported (family, resolution, layers and grids, what the file lacks)."""

    # Shared by every family.
    @property
    def name(self) -> str:
        """A label for lists and captions: folder / file name, and step when known."""
        step = "" if self.step is None else f" (step {self.step})"
        return f"{self.path.parent.name}/{self.path.name}{step}"

    @property
    def device_label(self) -> str:
        """Where the networks run, in words."""
        return describe_device(self.device)

    @property
    def conditional(self) -> bool:
        """True when the generator takes a class."""
        return self.num_classes > 0

    @property
    def generator(self) -> nn.Module:
        """The default generator (EMA-G where the file has one)."""
        return self.generators[self.weight_choices[0]]

    def generator_for(self, weights: str) -> nn.Module:
        """One of the file's generators by name ('ema', 'raw')."""
        if weights not in self.generators:
            raise ValueError(f"weights must be one of {tuple(self.generators)} for this model, got {weights!r}")
        return self.generators[weights]

    def networks(self, weights: str) -> dict[str, nn.Module]:
        """'G' (of those weights) and, where the model has one, 'D'."""
        networks = {"G": self.generator_for(weights)}
        if self.discriminator is not None:
            networks["D"] = self.discriminator
        return networks

    def attention_layers(self) -> list[AttentionLayerInfo]:
        """Every attention layer with its query and key grids, G's first."""
        modules = {name: self.attention_module(name) for name in self.query_shapes()}
        return [AttentionLayerInfo(name, shape, modules[name].key_shape(*shape))
                for name, shape in self.query_shapes().items()]

    def layers_text(self) -> str:
        """'G.attn0 (16×16 queries over 8×8 keys), ...' for reports."""
        return ", ".join(f"{info.name} ({info.query_shape[0]}×{info.query_shape[1]} queries over "
                         f"{info.key_shape[0]}×{info.key_shape[1]} keys)" for info in self.attention_layers())

    def attention_layer_names(self) -> list[str]:
        """['G.attn0', ..., 'D.attn0', ...]; empty for a model without attention."""
        return list(self.query_shapes())

    def attention_module(self, layer: str, weights: str | None = None) -> SelfAttention:
        """The SelfAttention behind a layer name, in G of those weights or in D."""
        network_name, index = parse_layer_name(layer)
        network = self.networks(weights or self.weight_choices[0]).get(network_name)
        modules = [] if network is None else [module for _, module in network.attention_layers()]
        if index >= len(modules):
            known = ", ".join(self.attention_layer_names()) or "none: this model has no attention layers"
            raise ValueError(f"unknown attention layer {layer!r}; layers: {known}")
        return modules[index]

    def class_label(self, label: int) -> str:
        """A class as people name it: 'golden retriever', or 'class 3' when the file has no names."""
        if self.class_names is not None and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return f"class {label}"

    def class_for_text(self, text: str) -> int:
        """A class from its index ('207') or its name in any case ('Golden Retriever'); ValueError otherwise."""
        text = str(text).strip()
        if not self.conditional:
            raise ValueError("this model is unconditional: it takes no class")
        if text.isdigit():
            self.check_label(int(text))
            return int(text)
        names = {name.lower(): index for index, name in enumerate(self.class_names or ())}
        if text.lower() in names:
            return names[text.lower()]
        close = difflib.get_close_matches(text.lower(), list(names), n=5)
        hint = f"; did you mean {', '.join(repr(name) for name in close)}?" if close else ""
        raise ValueError(f"{self.name} has no class {text!r} (give an index 0–{self.num_classes - 1}"
                         f"{' or a class name' if self.class_names else ''}){hint}")

    def default_label(self, seed: int) -> int | None:
        """The class a seed draws when the model is conditional and none is given."""
        return int(seed) % self.num_classes if self.conditional else None

    def check_label(self, label: int | None) -> None:
        """ValueError for a label the model cannot take."""
        if label is None:
            return
        if not self.conditional:
            raise ValueError("this model is unconditional: it takes no class label")
        if not 0 <= int(label) < self.num_classes:
            raise ValueError(f"label {label} does not exist: the model has {self.num_classes} classes")

    def label_tensor(self, labels: list[int] | None) -> torch.Tensor | None:
        """Class indices (B,) on the model's device, as this project's networks take them."""
        return None if labels is None else torch.tensor(labels, device=self.device)

    def resolve_truncation(self, truncation: float | None) -> float | None:
        """The family's default when None; ValueError when the family has none or the value is out of range."""
        if self.truncation is None:
            if truncation is not None:
                raise ValueError(f"{self.family} models take no truncation")
            return None
        return self.truncation.check(self.truncation.default if truncation is None else truncation)

    def generator_inputs(self, generation: Generation) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The z and labels that made generation, on the model's device."""
        labels = None if generation.label is None else self.label_tensor([generation.label])
        return generation.z.to(self.device), labels

    @contextmanager
    def gamma_overridden(self, weights: str | None = None, gamma: dict[str, float] | None = None):
        """Hold the model (one forward at a time) with some layers' gamma replaced; yields the chosen G.

        gamma maps layer names to values, e.g. {"G.attn0": 0.0}; every value is restored on exit.
        """
        gamma = dict(gamma or {})
        unknown = sorted(set(gamma) - set(self.attention_layer_names()))
        if unknown:
            known = ", ".join(self.attention_layer_names()) or "none: this model has no attention layers"
            raise ValueError(f"cannot set gamma of unknown layer {', '.join(unknown)}; layers: {known}")
        networks = self.networks(weights or self.weight_choices[0])
        with self._lock, override_gamma(networks["G"], "G", gamma):
            if "D" in networks:
                with override_gamma(networks["D"], "D", gamma):
                    yield networks["G"]
            else:
                yield networks["G"]

    @torch.no_grad()
    def generate(self, seed: int | None = None, *, z: torch.Tensor | None = None, label: int | None = None,
                 truncation: float | None = None, weights: str | None = None,
                 gamma: dict[str, float] | None = None) -> Generation:
        """Generate one image and keep every attention layer's input (β is computed when shown).

        seed names z under the family's prior (scaled by truncation where the family truncates); an
        explicit z (z_dim,) or (1, z_dim) is used as given. label defaults to seed mod classes.
        gamma, e.g. {"G.attn0": 0.0}, replaces those layers' learned gamma for this call only.
        weights names one of the file's generators (weight_choices; default the first, EMA-G where there is one).
        """
        weights = weights or self.weight_choices[0]
        truncation = self.resolve_truncation(truncation)
        if z is None:
            seed = 0 if seed is None else int(seed)
            z = self.latent(seed, truncation)
        else:
            z = torch.as_tensor(z, dtype=torch.float32).reshape(1, -1)
            if z.shape[1] != self.z_dim:
                raise ValueError(f"z must have {self.z_dim} values for this model, got {z.shape[1]}")
        self.check_label(label)
        if label is None:
            label = self.default_label(seed or 0)
        labels = None if label is None else self.label_tensor([int(label)])
        with self.gamma_overridden(weights, gamma) as generator:
            with capture_layer_inputs(generator, "G") as generator_layers:
                image = self.run_generator(generator, z.to(self.device), labels, truncation)
            score, discriminator_layers = None, {}
            if self.discriminator is not None:
                with capture_layer_inputs(self.discriminator, "D") as discriminator_layers:
                    score = self.run_discriminator(image, labels).item()
        return Generation(
            seed=seed, z=z.cpu(), label=None if label is None else int(label), truncation=truncation,
            weights=weights, image=to_uint8_images(image)[0], image_tensor=image,
            layers={**generator_layers, **discriminator_layers}, discriminator_score=score, step=self.step,
            label_name=None if label is None else self.class_label(int(label)),
            gamma_overrides={name: float(value) for name, value in (gamma or {}).items()},
        )


__all__ = ["AttentionLayerInfo", "LoadedModel", "ModelSummary", "TruncationRange", "layer_name"]

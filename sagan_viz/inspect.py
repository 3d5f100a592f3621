"""A generation and what a click needs from it: the image and each attention layer's input.

β of a layer is computed when that layer is shown, from the layer input kept here (x-transformers'
opt-in maps): a 64x64 query grid over 1,024 keys is 16 MB per layer, too much to store for every
layer of every image, while a click needs one row of it.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from torch import nn

from .attention import SelfAttention, attention_weights
from .layer_names import layer_name


@dataclass
class LayerCapture:
    """One attention layer's input for one image, and β computed from it on demand."""

    name: str  # e.g. "G.attn0"
    features: torch.Tensor = field(repr=False)  # x, the layer's input: (C, H, W)
    module: SelfAttention = field(repr=False)  # the layer that ran, for its f and g projections
    query_shape: tuple[int, int]  # (H, W)
    key_shape: tuple[int, int]  # (H, W), or pooled (H/2, W/2) for BigGAN-style layers
    gamma: float
    _query_key: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    # What other modules derive from this capture, kept for its lifetime (queries.py: each clicked cell's
    # row and peaks, so a click does not redo the earlier queries' work).
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    def query_key(self) -> tuple[torch.Tensor, torch.Tensor]:
        """g(x_j) (1, N, C_bar) and f(x_i) (1, N_key, C_bar), computed once (about 1/8 of x in size)."""
        if self._query_key is None:
            with torch.no_grad():
                self._query_key = self.module.query_key(self.features.unsqueeze(0))
        return self._query_key

    @property
    def key_count(self) -> int:
        """N_key: how many positions a β row spreads over."""
        return self.key_shape[0] * self.key_shape[1]

    def attention_row(self, query_index: int) -> torch.Tensor:
        """β_{j,·} for query j = query_index: (N_key,), sums to 1."""
        query, key = self.query_key()
        if not 0 <= query_index < query.shape[1]:
            raise ValueError(f"query {query_index} is outside 0..{query.shape[1] - 1}")
        with torch.no_grad():
            return attention_weights(query[:, query_index : query_index + 1], key)[0, 0]

    @property
    def attention(self) -> torch.Tensor:
        """The whole β (N_query, N_key), each row summing to 1; computed on every access, not stored."""
        query, key = self.query_key()
        with torch.no_grad():
            return attention_weights(query, key)[0]


class AttentionMaps(Mapping):
    """Layer name -> β (N_query, N_key), computed when read."""

    def __init__(self, layers: dict[str, LayerCapture]) -> None:
        self._layers = layers

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._layers[name].attention

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)


@dataclass
class Generation:
    """A generated image and the inputs of its attention layers, so a click never reruns the networks."""

    seed: int | None  # None when z was given explicitly
    z: torch.Tensor = field(repr=False)  # (1, z_dim) on the CPU: what G ran on
    label: int | None
    truncation: float | None  # None for families without truncation
    weights: str
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8
    image_tensor: torch.Tensor = field(repr=False)  # (1, 3, H, W) in [-1, 1], as G produced it
    layers: dict[str, LayerCapture] = field(repr=False)  # G's layers first, then D's (run on this image)
    discriminator_score: float | None  # None when the model has no discriminator
    step: int | None = None  # training step of the checkpoint that made it
    label_name: str | None = None  # the class as people name it, e.g. "golden retriever"
    gamma_overrides: dict[str, float] = field(default_factory=dict)  # layer -> gamma used instead of the learned one

    @property
    def attention(self) -> AttentionMaps:
        """Layer name -> β (N_query, N_key), computed when read."""
        return AttentionMaps(self.layers)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the generated image in pixels."""
        height, width = self.image.shape[:2]
        return width, height

    @property
    def origin(self) -> str:
        """Where the image came from in words: 'seed 7 · golden retriever (207) · truncation 0.4'."""
        parts = ["explicit z" if self.seed is None else f"seed {self.seed}"]
        if self.label is not None:
            name = self.label_name if self.label_name and self.label_name != f"class {self.label}" else None
            parts.append(f"{name} ({self.label})" if name else f"class {self.label}")
        if self.truncation is not None:
            parts.append(f"truncation {self.truncation:g}")
        return " · ".join(parts)

    @cached_property
    def problem(self) -> str | None:
        """A sentence when the image, a layer input or a γ is NaN/inf (its numbers would mean nothing), else None.

        Loading refuses files that do this; a γ override or a model from elsewhere can still get here. Checked
        once per generation (every click asks; BigGAN-deep's layer inputs took 9 ms a click to scan).
        """
        where = [] if torch.isfinite(self.image_tensor).all() else ["the image"]
        where += [name for name, capture in self.layers.items()
                  if not (math.isfinite(capture.gamma) and torch.isfinite(capture.features).all())]
        return None if not where else non_finite_warning(", ".join(where))

    def layer(self, name: str) -> LayerCapture:
        """The capture of one attention layer; ValueError listing the layers when the name is unknown."""
        if name not in self.layers:
            known = ", ".join(self.layers) or "none: this model has no attention layers"
            raise ValueError(f"unknown attention layer {name!r}; layers: {known}")
        return self.layers[name]


def non_finite_warning(where: str) -> str:
    """What to show instead of numbers computed from NaN/inf values, naming where they appeared."""
    return (f"this checkpoint produced non-finite values (NaN/inf) in {where}: the image and the attention "
            "maps cannot be shown as numbers. The file's weights (or a γ set here) are damaged or far out of range.")


@contextmanager
def capture_layer_inputs(network: nn.Module, network_name: str):
    """Keep the input of every SelfAttention in network (batch element 0) during forward passes.

    Yields a dict filled as the network runs: "<network_name>.attnK" -> LayerCapture.
    """
    captured: dict[str, LayerCapture] = {}
    handles = []
    for index, (_, module) in enumerate(network.attention_layers()):
        def hook(module: SelfAttention, inputs, output, name=layer_name(network_name, index)):
            x = inputs[0].detach()[0]  # (C, H, W)
            captured[name] = LayerCapture(
                name=name, features=x, module=module, query_shape=tuple(x.shape[-2:]),
                key_shape=module.key_shape(*x.shape[-2:]), gamma=module.gamma.item(),
            )
        handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def override_gamma(network: nn.Module, network_name: str, values: dict[str, float]):
    """Set gamma of the named layers ("<network_name>.attnK" -> value) for the block; restored afterwards.

    Names of other networks' layers are skipped, so one dict can go to G and to D. Not thread-safe
    on its own: LoadedModel holds its lock around it.
    """
    layers = {layer_name(network_name, index): module for index, (_, module) in enumerate(network.attention_layers())}
    mine = {name: value for name, value in values.items() if name.startswith(f"{network_name}.")}
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

"""Teaching mode: one query cell through one attention layer, step by step, with the real tensors.

Everything is computed with the functions of attention.py on the input features that inspect.py
captured, through the very weights that made the generation, so the numbers a class reads are the
numbers the network used. Orientation as in attention.py: s_ij = f(x_i)^T g(x_j), beta_{j,i} is a
softmax over keys i, o_j = sum_i beta_{j,i} h(x_i), y_j = gamma o_j + x_j.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .attention import SelfAttention, attend_explicit, attention_scores, residual_output
from .families.interface import LoadedModel
from .grid import cell_on_grid, cell_to_index, index_to_cell
from .inspect import Generation
from .queries import QUERY_COLOURS
from .render import OUTLINE, attention_grid_image, colourise

QUERY_MARK = QUERY_COLOURS[1]  # sky blue: the query's own cell, on the image and on the key grid
TOP_KEYS = 5  # rows of the top-beta table
CHANGE_THRESHOLD = 8.0  # intensity levels (of 255) above which a pixel counts as changed
DIFFERENCE_FLOOR = 1.0  # levels: the difference map is never scaled up further, so rounding noise stays dark
NEAR_ZERO_GAMMA = 1e-3  # below this a learned gamma is "about 0": the slider gets a fixed range


@dataclass
class TeachingWalkthrough:
    """One layer, one image, one query cell j: every tensor of eqs. (1)-(3), as the network computed it."""

    layer: str  # e.g. "G.attn0"
    variant: str  # "paper" or "official"
    query_cell: tuple[int, int]  # (row, col) on the query grid
    query_index: int  # j = row * W + col
    query_shape: tuple[int, int]  # (H, W)
    key_shape: tuple[int, int]  # (H_key, W_key): (H, W), or (H/2, W/2) when keys are pooled
    x: torch.Tensor  # the layer's input: (C, N)
    key: torch.Tensor  # f(x): (C_bar, N_key)
    query: torch.Tensor  # g(x): (C_bar, N)
    value: torch.Tensor  # h(x): (C_value, N_key)
    scores: torch.Tensor  # s_{.j} over keys i: (N_key,)
    beta: torch.Tensor  # beta_{j,.}: (N_key,), sums to 1
    attended: torch.Tensor  # sum_i beta_{j,i} h(x_i): (C_value,)
    o: torch.Tensor  # o_j: (C,); after the output projection v for "official"
    gamma: float  # the gamma the generation ran with (learned, or overridden)
    y: torch.Tensor  # y_j = gamma o_j + x_j, assembled here: (C,)
    layer_output: torch.Tensor  # the layer's own forward pass at j: (C,)
    gamma_overridden: bool = False

    @property
    def C(self) -> int:
        """Channels of x."""
        return self.x.shape[0]

    @property
    def C_bar(self) -> int:
        """Channels of f(x) and g(x): C/8."""
        return self.query.shape[0]

    @property
    def C_value(self) -> int:
        """Channels of h(x): C ('paper') or C/2 ('official')."""
        return self.value.shape[0]

    @property
    def N(self) -> int:
        """Query positions H * W."""
        return self.x.shape[1]

    @property
    def N_key(self) -> int:
        """Key positions H_key * W_key."""
        return self.key.shape[1]

    @property
    def x_j(self) -> torch.Tensor:
        """The input vector at the query cell: (C,)."""
        return self.x[:, self.query_index]

    @property
    def query_j(self) -> torch.Tensor:
        """g(x_j): (C_bar,)."""
        return self.query[:, self.query_index]

    @property
    def max_output_difference(self) -> float:
        """max over channels of |y_j - layer(x)_j|: ~1e-7 when the steps reproduce the layer."""
        return float((self.y - self.layer_output).abs().max())

    def key_cell(self, key_index: int) -> tuple[int, int]:
        """(row, col) on the key grid of key position i."""
        return index_to_cell(key_index, self.key_shape)

    def query_on_key_grid(self) -> tuple[int, int]:
        """The key cell that covers the query cell (the same cell unless keys are pooled)."""
        return cell_on_grid(self.query_cell, self.query_shape, self.key_shape)


def attention_module(model: LoadedModel, layer: str, weights: str) -> SelfAttention:
    """The SelfAttention behind a layer name in the network that ran it: G of those weights, or D."""
    return model.attention_module(layer, weights)


def to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """A detached float32 CPU copy, for display and for keeping beside a generation."""
    return tensor.detach().float().cpu()


@torch.no_grad()
def teaching_walkthrough(
    model: LoadedModel, generation: Generation, layer: str, query_cell: tuple[int, int]
) -> TeachingWalkthrough:
    """Eqs. (1)-(3) for one query cell, from the generation's captured input and the model's weights."""
    capture = generation.layer(layer)
    module = attention_module(model, layer, generation.weights)
    if capture.features.shape[0] != module.channels:
        raise ValueError(f"this image was not made by {model.name}: {layer} has a different width there")
    j = cell_to_index(tuple(query_cell), capture.query_shape)  # ValueError outside the grid
    x = capture.features.unsqueeze(0)  # (1, C, H, W)
    projections = module.project(x)
    query_j = projections.query[:, j : j + 1]  # (1, 1, C_bar): only row j of eq. (1)
    scores = attention_scores(query_j, projections.key)  # (1, 1, N_key)
    attended, beta = attend_explicit(query_j, projections.key, projections.value)  # (1, 1, C_value), (1, 1, N_key)
    o = attended.reshape(1, -1, 1, 1)  # o_j as a 1x1 map, so the layer's own 1x1 projection applies
    if module.v is not None:
        o = module.v(o)
    gamma = torch.tensor(capture.gamma, dtype=x.dtype, device=x.device)
    y = residual_output(x.flatten(2)[0, :, j], o.flatten(), gamma)  # eq. (3) at j
    # The layer's forward pass (fused kernel) with the gamma this generation ran with.
    with model.gamma_overridden(generation.weights, {layer: capture.gamma}):
        layer_output = module(x).flatten(2)[0, :, j]
    return TeachingWalkthrough(
        layer=layer, variant=module.variant, query_cell=tuple(query_cell), query_index=j,
        query_shape=tuple(capture.query_shape), key_shape=tuple(capture.key_shape),
        x=to_cpu(x.flatten(2)[0]), key=to_cpu(projections.key[0].T), query=to_cpu(projections.query[0].T),
        value=to_cpu(projections.value[0].T), scores=to_cpu(scores[0, 0]), beta=to_cpu(beta[0, 0]),
        attended=to_cpu(attended[0, 0]), o=to_cpu(o.flatten()), gamma=capture.gamma, y=to_cpu(y),
        layer_output=to_cpu(layer_output), gamma_overridden=layer in generation.gamma_overrides,
    )


def mark_cell(grid: np.ndarray, cell: tuple[int, int], cell_pixels: int, colour) -> np.ndarray:
    """A copy of an attention_grid_image with a frame around one cell: colour on its grid lines, dark edges."""
    marked = grid.copy()
    top, left = cell[0] * cell_pixels, cell[1] * cell_pixels  # the cell's grid lines
    bottom, right = top + cell_pixels, left + cell_pixels
    for width, paint in ((2, OUTLINE), (1, colour)):  # dark 5-pixel band, then a 3-pixel colour band on it
        rows = slice(max(top - width, 0), bottom + width + 1)
        columns = slice(max(left - width, 0), right + width + 1)
        for line in (top, bottom):
            marked[max(line - width, 0) : line + width + 1, columns] = paint
        for line in (left, right):
            marked[rows, max(line - width, 0) : line + width + 1] = paint
    return marked


def score_and_beta_images(w: TeachingWalkthrough, cell_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, beta) of query j as maps on the key grid, each min→dark, max→bright; query cell framed."""
    scores = w.scores.double().reshape(w.key_shape).numpy()
    spread = scores.max() - scores.min()
    scores = (scores - scores.min()) / spread if spread > 0 else np.zeros_like(scores)
    beta = w.beta.double().reshape(w.key_shape).numpy()
    query = w.query_on_key_grid()
    return tuple(
        mark_cell(attention_grid_image(values, cell_pixels), query, cell_pixels, QUERY_MARK)
        for values in (scores, beta)
    )


@dataclass
class GammaEffect:
    """What overriding gamma did to one image: the new image, where it changed, and by how much."""

    image: np.ndarray  # the image made with the override: (H, W, 3) uint8
    difference_image: np.ndarray  # change / max(max_abs_change, 1 level) through magma: (H, W, 3) uint8
    change: np.ndarray  # per pixel, max over RGB of |delta|, in intensity levels of 255: (H, W)
    mean_abs_change: float  # mean of change
    max_abs_change: float  # the brightest colour of difference_image
    share_of_pixels_changed: float  # share of pixels whose change exceeds threshold
    threshold: float
    discriminator_score_before: float
    discriminator_score_after: float
    overrides: dict[str, float]  # layer -> gamma of the overridden generation


def gamma_effect(original: Generation, overridden: Generation, threshold: float = CHANGE_THRESHOLD) -> GammaEffect:
    """Compare the same seed with and without a gamma override, pixel by pixel."""
    same_inputs = (torch.equal(original.z, overridden.z) and (original.label, original.truncation, original.weights)
                   == (overridden.label, overridden.truncation, overridden.weights))
    if not same_inputs:
        raise ValueError("compare the same z, class, truncation and weights: only gamma may differ")
    if original.image_tensor.shape != overridden.image_tensor.shape:
        raise ValueError(f"images differ in shape: {tuple(original.image_tensor.shape)} and "
                         f"{tuple(overridden.image_tensor.shape)}")
    delta = (to_cpu(overridden.image_tensor[0]) - to_cpu(original.image_tensor[0])).double()  # (3, H, W)
    change = (delta.abs().amax(dim=0) * 127.5).numpy()  # [-1, 1] -> levels of 255
    maximum = float(change.max())
    return GammaEffect(
        image=overridden.image, difference_image=colourise(change / max(maximum, DIFFERENCE_FLOOR)), change=change,
        mean_abs_change=float(change.mean()), max_abs_change=maximum,
        share_of_pixels_changed=float((change > threshold).mean()), threshold=threshold,
        discriminator_score_before=original.discriminator_score,
        discriminator_score_after=overridden.discriminator_score,
        overrides=dict(overridden.gamma_overrides),
    )


def gamma_slider_range(learned: float) -> tuple[float, float]:
    """From 0 to twice the learned gamma (either sign); [-0.5, 0.5] when the learned gamma is about 0."""
    if abs(learned) < NEAR_ZERO_GAMMA:
        return -0.5, 0.5
    return min(0.0, 2 * learned), max(0.0, 2 * learned)

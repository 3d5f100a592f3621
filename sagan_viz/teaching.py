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
from .grid import cell_to_index, index_to_cell
from .families.interface import LoadedModel
from .inspect import Generation
from .render import OUTLINE, QUERY_COLOURS, attention_grid_image, colourise

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
        row, column = self.query_cell
        return row * self.key_shape[0] // self.query_shape[0], column * self.key_shape[1] // self.query_shape[1]


def attention_module(model: LoadedModel, layer: str, weights: str) -> SelfAttention:
    """The SelfAttention behind a layer name in the network that ran it: G of those weights, or D."""
    return model.attention_module(layer, weights)


def gamma_text(gamma: float) -> str:
    """+0.0316, or +3.38e-06 for a gamma that four decimals would show as 0."""
    return f"{gamma:+.4f}" if gamma == 0 or abs(gamma) >= NEAR_ZERO_GAMMA else f"{gamma:+.2e}"


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


def vector_text(values: torch.Tensor, limit: int = 8) -> str:
    """(0.12, −0.34, …) with at most limit entries, for small vectors shown in full."""
    shown = ", ".join(f"{float(v):+.3f}" for v in values[:limit])
    return f"({shown}{', …' if len(values) > limit else ''})"


def dot_product_latex(left: torch.Tensor, right: torch.Tensor) -> str:
    """a_1 b_1 + a_2 b_2 + ... written out in LaTeX (for the C_bar-long vectors of eq. 1)."""
    terms = [f"({float(a):.2f})({float(b):.2f})" for a, b in zip(left, right)]
    return " + ".join(terms)


def shapes_line(w: TeachingWalkthrough) -> str:
    """'C = 32, C̄ = 4, N = 16×16 = 256' and the key grid when it differs."""
    height, width = w.query_shape
    line = f"C = {w.C}, C̄ = {w.C_bar}, N = {height}×{width} = {w.N}"
    if w.key_shape != w.query_shape:
        line += f", N_key = {w.key_shape[0]}×{w.key_shape[1]} = {w.N_key}"
    return line


def top_keys(w: TeachingWalkthrough, count: int = TOP_KEYS) -> list[int]:
    """Key positions i with the largest beta_{j,i}, largest first."""
    return torch.argsort(w.beta, descending=True, stable=True)[:count].tolist()


def input_step(w: TeachingWalkthrough) -> str:
    """Step 1: x and the query position j."""
    row, column = w.query_cell
    return (
        f"The layer reads the feature map $x \\in \\mathbb{{R}}^{{C \\times N}}$ made by the block before it: "
        f"one $C$-vector per position of the {w.query_shape[0]}×{w.query_shape[1]} grid.\n\n"
        f"**Shapes:** {shapes_line(w)}.\n\n"
        f"**Query:** cell (row {row}, col {column}), so $j = {row} \\cdot {w.query_shape[1]} + {column} = "
        f"{w.query_index}$; $\\lVert x_j \\rVert = {float(w.x_j.norm()):.3f}$."
    )


def projection_step(w: TeachingWalkthrough) -> str:
    """Step 2: the three 1x1 convolutions, with their real shapes."""
    text = (
        "$$f(x) = W_f\\,x, \\qquad g(x) = W_g\\,x, \\qquad h(x) = W_h\\,x$$\n\n"
        "Three 1×1 convolutions: $W_f, W_g \\in \\mathbb{R}^{\\bar C \\times C}$ "
        f"with $\\bar C = C/8 = {w.C_bar}$ make keys f and queries g; "
        f"$W_h$ makes the values h with {w.C_value} channels.\n\n"
        f"**Shapes:** f(x): {w.C_bar} × {w.N_key}, g(x): {w.C_bar} × {w.N}, h(x): {w.C_value} × {w.N_key}."
    )
    if w.variant == "official":
        text += (
            f" (Official variant: f(x) and h(x) are max-pooled 2×2, so the keys live on a "
            f"{w.key_shape[0]}×{w.key_shape[1]} grid, N_key = {w.N_key}, and h has C/2 = {w.C_value} channels.)"
        )
    return text + f"\n\n**The query of cell j:** g(x_j) = {vector_text(w.query_j)}."


def score_step(w: TeachingWalkthrough) -> str:
    """Step 3: s_ij for every key i, one worked dot product."""
    best = top_keys(w, 1)[0]
    key_i = w.key[:, best]
    worked = f"{float(w.scores[best]):.3f}"
    if w.C_bar <= 8:  # short enough to write out, with the factors rounded
        worked += f" \\approx {dot_product_latex(key_i, w.query_j)}"
    return (
        f"$$s_{{ij}} = f(x_i)^\\top g(x_j), \\qquad i = 1, \\dots, N_{{\\text{{key}}}}$$\n\n"
        f"One number per key: the row $s_{{\\cdot j}}$ has N_key = {w.N_key} entries, from "
        f"{float(w.scores.min()):.3f} to {float(w.scores.max()):.3f} (mean {float(w.scores.mean()):.3f}). "
        "There is no 1/√C̄ scaling in SAGAN.\n\n"
        f"Worked for the highest key i = {w.key_cell(best)}: f(x_i) = {vector_text(key_i)}, and\n\n"
        f"$$s_{{ij}} = {worked}$$"
    )


def softmax_step(w: TeachingWalkthrough) -> str:
    """Step 4: softmax over keys, with the top-k table."""
    uniform = 1 / w.N_key
    peak = float(w.beta.max())
    lines = [
        "$$\\beta_{j,i} = \\frac{\\exp(s_{ij})}{\\sum_{k=1}^{N_{\\text{key}}} \\exp(s_{kj})}$$",
        "",
        f"Eq. (1): a softmax over the keys i. Sum of β over i = **{float(w.beta.double().sum()):.6f}**; "
        f"max β = {peak:.4f} = {peak / uniform:.1f}× the uniform 1/{w.N_key} = {uniform:.4f}.",
        "",
        "| rank | key cell (row, col) | s_ij | β_j,i |",
        "|---|---|---|---|",
    ]
    keys = top_keys(w)
    for rank, key in enumerate(keys, start=1):
        lines.append(f"| {rank} | {w.key_cell(key)} | {float(w.scores[key]):+.3f} | {float(w.beta[key]):.4f} |")
    share = float(w.beta[keys].sum())
    lines += ["", f"These {len(keys)} of {w.N_key} keys hold {share:.1%} of the attention."]
    return "\n".join(lines)


def output_step(w: TeachingWalkthrough) -> str:
    """Step 5: o_j, with the output projection of the official variant."""
    if w.variant == "official":
        equation = "$$o_j = W_v \\sum_{i=1}^{N_{\\text{key}}} \\beta_{j,i}\\, h(x_i)$$"
        shape = (
            f"The weighted sum has C/2 = {w.C_value} channels; the 1×1 projection $W_v$ takes it back to "
            f"C = {w.C}."
        )
    else:
        equation = "$$o_j = \\sum_{i=1}^{N_{\\text{key}}} \\beta_{j,i}\\, h(x_i)$$"
        shape = f"Eq. (2): a weighted average of the values, one C = {w.C} vector."
    return (
        f"{equation}\n\n{shape}\n\n**Shapes:** o_j: {w.C}; $\\lVert o_j \\rVert = {float(w.o.norm()):.3f}$; "
        f"o_j = {vector_text(w.o, 6)}."
    )


def residual_step(w: TeachingWalkthrough) -> str:
    """Step 6: y_j = gamma o_j + x_j, checked against the layer's forward pass."""
    source = "set by you (the learned value is overridden)" if w.gamma_overridden else "learned"
    attention_part, input_part = abs(w.gamma) * float(w.o.norm()), float(w.x_j.norm())
    return (
        "$$y_j = \\gamma\\, o_j + x_j$$\n\n"
        f"Eq. (3) with γ = **{gamma_text(w.gamma)}** ({source}). γ starts at 0 in training, so at first the "
        "layer passes x through unchanged.\n\n"
        f"$\\lVert \\gamma\\, o_j \\rVert = {attention_part:.3f}$ next to $\\lVert x_j \\rVert = {input_part:.3f}$: "
        f"attention moves this cell by {attention_part / max(input_part, 1e-12):.1%} of its input's length.\n\n"
        f"**Check:** max |y_j − layer(x)_j| = {w.max_output_difference:.2e} over the C = {w.C} channels: "
        "these steps reproduce the layer's own forward pass."
    )


def walkthrough_markdown(w: TeachingWalkthrough) -> list[tuple[str, str]]:
    """The walkthrough as (title, Markdown with LaTeX) steps: x → f, g, h → s → β → o_j → y_j."""
    return [
        ("1 · The input x", input_step(w)),
        ("2 · Keys, queries, values: f(x), g(x), h(x)", projection_step(w)),
        ("3 · Scores s_ij for query j", score_step(w)),
        ("4 · Softmax over keys: β_j,i", softmax_step(w)),
        ("5 · The attention output o_j", output_step(w)),
        ("6 · The residual: y_j = γ o_j + x_j", residual_step(w)),
    ]


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


def gamma_effect_markdown(effect: GammaEffect, learned: dict[str, float]) -> str:
    """The change statistics in words; learned maps each overridden layer to its learned gamma."""
    settings = ", ".join(
        f"{layer}: γ {gamma_text(learned.get(layer, float('nan')))} → {gamma_text(value)}"
        for layer, value in effect.overrides.items()
    ) or "no override"
    lines = [
        f"**{settings}** (same z, same weights).",
        "",
        "| | value |",
        "|---|---|",
        f"| mean \\|Δ\\| per pixel | {effect.mean_abs_change:.2f} levels of 255 |",
        f"| max \\|Δ\\| (the brightest colour of the difference map, if ≥ {DIFFERENCE_FLOOR:g}) "
        f"| {effect.max_abs_change:.2f} levels |",
        f"| pixels changed by more than {effect.threshold:g} levels | {effect.share_of_pixels_changed:.1%} |",
    ]
    if effect.discriminator_score_before is not None:
        lines.append(f"| D(x) | {effect.discriminator_score_before:+.3f} → {effect.discriminator_score_after:+.3f} |")
    if effect.overrides and all(layer.startswith("D.") for layer in effect.overrides):
        lines += ["", "D's attention runs after the image is made: the image cannot change, only D's judgement."]
    elif effect.max_abs_change == 0:
        lines += ["", "Nothing changed: with this γ the image is the same, pixel for pixel."]
    return "\n".join(lines)


def gamma_slider_range(learned: float) -> tuple[float, float]:
    """From 0 to twice the learned gamma (either sign); [-0.5, 0.5] when the learned gamma is about 0."""
    if abs(learned) < NEAR_ZERO_GAMMA:
        return -0.5, 0.5
    return min(0.0, 2 * learned), max(0.0, 2 * learned)

"""Teaching mode's words: the steps of eqs. (1)-(3) for one query as Markdown with LaTeX, and what gamma did.

The numbers come from teaching.py's TeachingWalkthrough and GammaEffect; this module only writes them.
"""
from __future__ import annotations

import torch

from .layer_names import network_of
from .teaching import DIFFERENCE_FLOOR, NEAR_ZERO_GAMMA, TOP_KEYS, GammaEffect, TeachingWalkthrough


def gamma_text(gamma: float) -> str:
    """+0.0316, or +3.38e-06 for a gamma that four decimals would show as 0."""
    return f"{gamma:+.4f}" if gamma == 0 or abs(gamma) >= NEAR_ZERO_GAMMA else f"{gamma:+.2e}"


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
    if effect.overrides and all(network_of(layer) == "D" for layer in effect.overrides):
        lines += ["", "D's attention runs after the image is made: the image cannot change, only D's judgement."]
    elif effect.max_abs_change == 0:
        lines += ["", "Nothing changed: with this γ the image is the same, pixel for pixel."]
    return "\n".join(lines)

"""Captum views: which cells of an attention layer's input change the pixels of one query, and D's view.

Two questions sit side by side for one query cell j of a G attention layer:
  - beta_{j,.}, "where the layer looks" (eq. 1), read from the stored Generation;
  - the attribution of the generated pixels under cell j to the layer's input x (B, C, H, W), "what
    changes the output there": Captum's layer methods with attribute_to_layer_input=True.
Attribution sees both routes from x to the pixels: the attention branch gamma * o and the residual x
that the later convolutions read around j. Forcing gamma to 0 for the call leaves the second alone,
the convolutional receptive field.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from .analysis import as_array, find_peaks
from .attention import SelfAttention
from .families.interface import LoadedModel
from .figure_text import draw_text
from .grid import cell_center, cell_pixel_box, cell_to_index
from .imaging import upscale_nearest
from .inspect import Generation
from .layer_names import network_of
from .paper_figure import BACKGROUND, TEXT, figure_caption, figure_layout, fitted_font, write_lines
from .queries import QUERY_COLOURS, QueryView, query_view
from .render import attention_overlay, draw_arrows, draw_markers

METHODS = ("gradient_x_activation", "integrated_gradients")
DISCRIMINATOR_METHODS = ("saliency", "integrated_gradients")
INTEGRATION_STEPS = 32  # steps of integrated gradients (Captum's default Gauss-Legendre rule)
FIGURE_SCALE = 8  # display pixels per generated pixel in the attribution and discriminator figures
# D's counterpart of each query method: the studio offers one choice for both views.
DISCRIMINATOR_METHOD_FOR = {"gradient_x_activation": "saliency", "integrated_gradients": "integrated_gradients"}


@dataclass
class AttributionResult:
    """The attribution of one query's pixels to one attention layer's input x, per feature cell."""

    layer: str  # e.g. "G.attn0"
    query_cell: tuple[int, int]  # (row, col) on the layer's query grid
    method: str  # one of METHODS
    gamma_zero: bool  # True: the layer's gamma was 0 for the call (receptive field alone)
    signed_map: np.ndarray  # (H, W): sum over channels of the attribution to x
    magnitude_map: np.ndarray  # (H, W): sum over channels of |attribution|, no cancellation between channels
    seconds: float  # wall time of the Captum call


def generator_attention_layer(model: LoadedModel, layer: str, weights: str) -> SelfAttention:
    """The SelfAttention module named "G.attnK" in G of those weights; ValueError for D layers and unknown names."""
    if network_of(layer) == "D":
        raise ValueError(f"{layer} is a discriminator layer: query attribution needs a G layer; "
                         "the discriminator view is discriminator_attribution")
    return model.attention_module(layer, weights)


def pixel_block_sum(model: LoadedModel, generator: torch.nn.Module, box: tuple[int, int, int, int],
                    truncation: float | None):
    """forward(z, labels) -> (B,): the sum over RGB and the block of G's output (tanh, in [-1, 1])."""
    top, bottom, left, right = box

    def forward(z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return model.run_generator(generator, z, labels, truncation)[:, :, top:bottom, left:right].sum(dim=(1, 2, 3))

    return forward


def layer_input_attribution(forward, layer: SelfAttention, z: torch.Tensor, labels, method: str) -> torch.Tensor:
    """Captum attribution of forward(z, labels) to the layer's input: (1, C, H, W).

    integrated_gradients integrates in the layer's input space from x(z = 0) to x(z), the same label.
    """
    # Imported here, not at module import: captum brings matplotlib, and the studio starts without either.
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    arguments = dict(additional_forward_args=(labels,), attribute_to_layer_input=True)
    if method == "gradient_x_activation":
        attribution = LayerGradientXActivation(forward, layer).attribute(z, **arguments)
    else:
        attribution = LayerIntegratedGradients(forward, layer).attribute(
            z, baselines=torch.zeros_like(z), n_steps=INTEGRATION_STEPS, **arguments
        )
    return attribution[0] if isinstance(attribution, (tuple, list)) else attribution


def generation_inputs(model: LoadedModel, generation: Generation) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The z and labels that made generation, on the model's device."""
    return model.generator_inputs(generation)


def query_attribution(
    model: LoadedModel,
    generation: Generation,
    layer: str,
    query_cell: tuple[int, int],
    method: str = "gradient_x_activation",
    gamma_zero: bool = False,
) -> AttributionResult:
    """Attribution of the pixels under query_cell (summed over RGB) to the input x of G layer `layer`.

    Runs the G (EMA or raw) that made generation on its seed and label; gamma_zero=True sets that
    layer's gamma to 0 for the call (restored afterwards, even on error) to show the receptive field alone.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    generator = model.generator_for(generation.weights)
    attention_layer = generator_attention_layer(model, layer, generation.weights)
    capture = generation.layer(layer)
    box = cell_pixel_box(tuple(query_cell), capture.query_shape, generation.image.shape[:2])
    z, labels = generation_inputs(model, generation)
    gamma = {**generation.gamma_overrides, **({layer: 0.0} if gamma_zero else {})}
    # The model's lock: Captum's hooks on the layer and the changed gamma must not meet another call.
    with model.gamma_overridden(generation.weights, gamma):
        start = time.perf_counter()
        attribution = layer_input_attribution(pixel_block_sum(model, generator, box, generation.truncation), attention_layer, z, labels, method)
        seconds = time.perf_counter() - start
    attribution = attribution.detach()[0].to("cpu", torch.float64)  # (C, H, W)
    return AttributionResult(
        layer=layer, query_cell=tuple(query_cell), method=method, gamma_zero=gamma_zero,
        signed_map=attribution.sum(0).numpy(), magnitude_map=attribution.abs().sum(0).numpy(), seconds=seconds,
    )


def discriminator_attribution(model: LoadedModel, generation: Generation, method: str = "saliency") -> np.ndarray:
    """(H_img, W_img) map of D's score w.r.t. the generated image: sum over RGB of |attribution|.

    saliency: |dD/dimage| (Simonyan et al. 2014); integrated_gradients: from a black image (-1 in the
    networks' [-1, 1] space) to the image.
    """
    if method not in DISCRIMINATOR_METHODS:
        raise ValueError(f"method must be one of {DISCRIMINATOR_METHODS}, got {method!r}")
    if model.discriminator is None:
        raise ValueError(f"this {model.family} checkpoint has no discriminator to attribute (its file holds G only)")
    from captum.attr import IntegratedGradients, Saliency  # here, not at module import: see layer_input_attribution
    images = generation.image_tensor.detach().to(model.device, torch.float32).clone().requires_grad_()  # (1, 3, H, W)
    _, labels = generation_inputs(model, generation)

    def score(images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return model.run_discriminator(images, labels)  # (B,)

    with model.gamma_overridden(generation.weights, generation.gamma_overrides):
        if method == "saliency":
            attribution = Saliency(score).attribute(images, additional_forward_args=(labels,), abs=True)
        else:
            attribution = IntegratedGradients(score).attribute(
                images, baselines=torch.full_like(images, -1.0), additional_forward_args=(labels,),
                n_steps=INTEGRATION_STEPS,
            )
    return attribution.detach()[0].abs().sum(0).to("cpu", torch.float64).numpy()


def pool_to(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """Sum-pool a (H, W) map onto a coarser (h, w) grid that divides it; None when it does not."""
    (height, width), (rows, columns) = values.shape, tuple(shape)
    if rows < 1 or columns < 1 or height % rows or width % columns:
        return None
    return values.reshape(rows, height // rows, columns, width // columns).sum(axis=(1, 3))


def receptive_field(gamma_zero_result: AttributionResult) -> np.ndarray:
    """(H, W) bool: the cells the later convolutions reach from the query, read off the gamma = 0 attribution.

    With gamma = 0 and BatchNorm in eval mode, cells outside the receptive field get exactly 0.
    """
    values = gamma_zero_result.magnitude_map
    return values > 1e-9 * max(float(values.max()), 1e-30)


def beyond_receptive_field(result: AttributionResult, gamma_zero_result: AttributionResult) -> np.ndarray:
    """result's |attribution| with the receptive field zeroed: what can only have come through attention."""
    return np.where(receptive_field(gamma_zero_result), 0.0, result.magnitude_map)


def beta_correlation(beta_map, attribution_map, receptive_field_mask: np.ndarray | None = None) -> float | None:
    """Pearson correlation of a beta row and an attribution map on the key grid; None where undefined.

    With receptive_field_mask (H, W), only key cells wholly outside the receptive field count.
    """
    beta = as_array(beta_map)
    pooled = pool_to(as_array(attribution_map), beta.shape)
    if pooled is None:
        return None
    keep = np.ones(beta.shape, bool)
    if receptive_field_mask is not None:
        keep = pool_to(receptive_field_mask.astype(np.float64), beta.shape) == 0
    beta, pooled = beta[keep], pooled[keep]
    if beta.size < 2 or beta.std() == 0 or pooled.std() == 0:
        return None
    return float(np.corrcoef(beta, pooled)[0, 1])


@dataclass
class AttributionSummary:
    """The numbers that go with one query's attribution, for captions and the app."""

    beta_correlation: float | None  # beta row vs |attribution|, every key cell
    seconds: float  # Captum time, both calls when gamma = 0 ran too
    receptive_field_cells: int | None = None  # cells the convolutions reach (needs the gamma = 0 run)
    share_beyond: float | None = None  # share of |attribution| outside them: what attention carried
    beta_correlation_beyond: float | None = None  # beta vs |attribution|, outside the receptive field only


def summarise(result: AttributionResult, beta_map, gamma_zero_result: AttributionResult | None = None):
    """AttributionSummary of a query's attribution against its beta row (and the gamma = 0 run if given)."""
    summary = AttributionSummary(beta_correlation(beta_map, result.magnitude_map), result.seconds)
    if gamma_zero_result is None:
        return summary
    mask = receptive_field(gamma_zero_result)
    total = max(float(result.magnitude_map.sum()), 1e-30)
    summary.seconds += gamma_zero_result.seconds
    summary.receptive_field_cells = int(mask.sum())
    summary.share_beyond = float(beyond_receptive_field(result, gamma_zero_result).sum()) / total
    summary.beta_correlation_beyond = beta_correlation(beta_map, result.magnitude_map, mask)
    return summary


def query_beta_row(generation: Generation, layer: str, query_cell: tuple[int, int]) -> np.ndarray:
    """beta_{j,.} of the query cell on the key grid (H_key, W_key), from the stored generation."""
    capture = generation.layer(layer)
    row = capture.attention_row(cell_to_index(tuple(query_cell), capture.query_shape)).reshape(capture.key_shape)
    return as_array(row)


def correlation_text(value: float | None) -> str:
    """A correlation for a caption: signed, two decimals, or n/a."""
    return "n/a" if value is None else f"{value:+.2f}"


def attribution_captions(result: AttributionResult, beta, summary: AttributionSummary) -> list[list[str]]:
    """Text under each panel of attribution_figure: the true scale of every map."""
    method = "grad × activation" if result.method == "gradient_x_activation" else "integrated grad."
    captions = [
        [f"query cell {result.query_cell}", "target: Σ of its pixels", f"method: {method}", ""],
        ["β row: where it looks", f"max β {beta.max():.4f}", f"= {beta.max() * beta.size:.1f}× uniform", ""],
        ["|attribution| to x:", "what changes the pixels", f"total {result.magnitude_map.sum():.3g}",
         f"corr. with β {correlation_text(summary.beta_correlation)}"],
    ]
    if summary.share_beyond is not None:
        cells = f"{summary.receptive_field_cells} cells reached"
        captions.append(["same with γ = 0:", "receptive field alone", cells, ""])
        captions.append(["beyond that field:", "only via attention", f"{100 * summary.share_beyond:.1f}% of the total",
                         f"corr. with β {correlation_text(summary.beta_correlation_beyond)}"])
    return captions


def attribution_figure(
    generation: Generation,
    result: AttributionResult,
    beta_map,
    scale: int = FIGURE_SCALE,
    gamma_zero_result: AttributionResult | None = None,
) -> Image.Image:
    """Image with the query | beta row | |attribution| [| with gamma = 0 | beyond its receptive field], captioned."""
    image = generation.image
    image_size = (image.shape[1], image.shape[0])
    capture = generation.layer(result.layer)
    beta = as_array(beta_map)
    query = QueryView(pixel=cell_center(result.query_cell, capture.query_shape, image_size), cell=result.query_cell,
                      colour=QUERY_COLOURS[0], attention_map=beta, peaks=find_peaks(beta))
    maps = [result.magnitude_map]
    if gamma_zero_result is not None:
        maps += [gamma_zero_result.magnitude_map, beyond_receptive_field(result, gamma_zero_result)]
    panels = [draw_markers(Image.fromarray(upscale_nearest(image, scale)), [query], image_size)]
    beta_panel = Image.fromarray(attention_overlay(image, beta, scale))
    panels.append(draw_markers(draw_arrows(beta_panel, query, capture.key_shape, image_size), [query], image_size))
    for values in maps:
        panels.append(draw_markers(Image.fromarray(attention_overlay(image, values, scale)), [query], image_size))
    captions = attribution_captions(result, beta, summarise(result, beta, gamma_zero_result))
    title = f"{figure_caption(generation, result.layer)} · attribution of the query's pixels to the layer's input x"
    return compose_panels(panels, captions, image_size, scale, title)


def compose_panels(panels: list[Image.Image], captions: list[list[str]], image_size, scale: int, title: str):
    """Panels in a row on white, a wrapped title above and caption lines below each, as paper_figure lays out."""
    layout = figure_layout(image_size, len(panels) - 1, scale, title)
    figure = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(figure)
    title_font = fitted_font(layout.title_lines, layout.size[0] - 2 * layout.gap, layout.font_size + 1)
    for index, line in enumerate(layout.title_lines):
        draw_text(draw, (layout.gap, layout.gap + index * layout.line_height), line, title_font, TEXT)
    font = fitted_font([line for lines in captions for line in lines], layout.panel_size[0], layout.font_size)
    for index, (panel, lines) in enumerate(zip(panels, captions)):
        left, top = layout.panel_origin(index)
        figure.paste(panel, (left, top))
        write_lines(draw, (left, top + layout.panel_size[1] + layout.gap // 2), lines, font, layout.line_height)
    return figure


def discriminator_figure(generation: Generation, saliency_map, method: str = "saliency", scale: int = FIGURE_SCALE):
    """The image beside D's attribution map over it: which pixels move D's score, the 'discriminator view'."""
    image = generation.image
    image_size = (image.shape[1], image.shape[0])
    values = as_array(saliency_map)
    panels = [Image.fromarray(upscale_nearest(image, scale)), Image.fromarray(attention_overlay(image, values, scale))]
    name = "saliency |∂D/∂x|" if method == "saliency" else "integr. grad. (black)"
    captions = [[f"D(x) = {generation.discriminator_score:+.2f}", f"seed {generation.seed}", "", ""],
                [name, "Σ over RGB", f"max {values.max():.3g}", f"total {values.sum():.3g}"]]
    return compose_panels(panels, captions, image_size, scale, "Discriminator view: what moves D's score")


def discriminator_view(model: LoadedModel, generation: Generation, method: str = "saliency",
                       scale: int = FIGURE_SCALE) -> Image.Image:
    """D's attribution over generation's image, drawn beside it: what the studio shows and the figure CLI redraws."""
    return discriminator_figure(generation, discriminator_attribution(model, generation, method), method, scale)


@dataclass
class QueryAttribution:
    """Everything the attribution view of one clicked pixel shows."""

    view: QueryView  # the query: its cell, marker and beta row
    result: AttributionResult
    gamma_zero_result: AttributionResult | None
    beta: np.ndarray  # (H_key, W_key)
    summary: AttributionSummary
    figure: Image.Image


def attribute_query(model: LoadedModel, generation: Generation, layer: str, pixel: tuple[float, float],
                    method: str = "gradient_x_activation", gamma_zero: bool = True, progress=None,
                    scale: int = FIGURE_SCALE) -> QueryAttribution:
    """The query under pixel (x, y), its attribution (and, with gamma_zero, the receptive field alone),
    its beta row, their summary and the figure; progress(fraction, desc=...) is told each step when given.

    The studio's Attribution tab and `python -m sagan_viz.figure --from` both draw the figure through here."""
    def report(fraction: float, what: str) -> None:
        if progress is not None:
            progress(fraction, desc=what)

    view = query_view(generation, layer, pixel, QUERY_COLOURS[0])
    report(0.1, "Captum: attribution of the query's pixels")
    result = query_attribution(model, generation, layer, view.cell, method)
    baseline = None
    if gamma_zero:
        report(0.55, "the same with γ = 0")
        baseline = query_attribution(model, generation, layer, view.cell, method, gamma_zero=True)
    beta = query_beta_row(generation, layer, view.cell)
    figure = attribution_figure(generation, result, beta, scale, gamma_zero_result=baseline)
    return QueryAttribution(view=view, result=result, gamma_zero_result=baseline, beta=beta,
                            summary=summarise(result, beta, baseline), figure=figure)

"""What the studio's panels show, assembled from library calls (no Gradio here, so it is testable)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..analysis import peaks_mass_share
from ..grid import display_click_to_pixel
from ..imaging import upscale_nearest
from ..inspect import Generation
from ..paper_figure import PanelCache, paper_figure
from ..queries import figure_caption, layer_capture, query_view
from ..render import QUERY_COLOURS, QueryView, attention_grid_image, draw_markers

DISPLAY_PIXELS = 512  # the clickable image is upscaled (nearest) to about this size


@dataclass
class InspectView:
    """Everything the Inspect tab shows for one (generation, layer, queries)."""

    display: np.ndarray  # the clickable image with markers
    figure: Image.Image  # image + one attention map per query, with arrows
    details: str  # Markdown: per-query true scale of beta
    grid: np.ndarray | None  # raw beta grid of the newest query


def display_scale(resolution: int) -> int:
    """Integer upscale factor so the clickable image is about DISPLAY_PIXELS wide."""
    return max(1, DISPLAY_PIXELS // resolution)


def clicked_pixel(generation: Generation, click_index) -> tuple[float, float]:
    """Gradio's click (x, y) on the clickable (upscaled) image -> generated-image pixel coordinates."""
    height, width = generation.image.shape[:2]
    scale = display_scale(width)
    return display_click_to_pixel(tuple(click_index), (width * scale, height * scale), (width, height))


def query_views(generation: Generation, layer: str | None, pixels) -> list[QueryView]:
    """One QueryView per clicked pixel, coloured in click order."""
    if layer is None:
        return []
    return [query_view(generation, layer, pixel, QUERY_COLOURS[i]) for i, pixel in enumerate(pixels)]


def clickable_image(generation: Generation, views: list[QueryView]) -> np.ndarray:
    """The generated image upscaled with nearest neighbour, query markers drawn on it."""
    height, width = generation.image.shape[:2]
    display = Image.fromarray(upscale_nearest(generation.image, display_scale(width)))
    return np.asarray(draw_markers(display, views, (width, height)))


def describe_queries(generation: Generation, layer: str, views: list[QueryView]) -> str:
    """A Markdown table of the true scale of each query's beta row."""
    capture = generation.layer(layer)
    key_count = capture.key_count
    lines = [
        f"**{layer}**: queries on a {capture.query_shape[0]}×{capture.query_shape[1]} grid, keys on "
        f"{capture.key_shape[0]}×{capture.key_shape[1]} (N_key = {key_count}, uniform β = {1 / key_count:.2e}); "
        f"γ = {capture.gamma:+.4f}. Maps are scaled to their own maximum for display; the true values are below.",
        "",
        "| query | pixel (x, y) | cell (row, col) | max β | max β ÷ uniform | mass in arrowed peaks |",
        "|---|---|---|---|---|---|",
    ]
    for index, view in enumerate(views):
        peak = float(view.attention_map.max())
        lines.append(
            f"| {index + 1} | ({view.pixel[0]:.0f}, {view.pixel[1]:.0f}) | {view.cell} | {peak:.2e} "
            f"| {peak * key_count:.1f}× | {f'{peaks_mass_share(view.peaks):.0%}' if view.peaks else 'no arrows: no peak stands out'} |"
        )
    if not views:
        lines.append("| – | click the image to add a query | | | | |")
    return "\n".join(lines)


def inspect_view(generation: Generation, layer: str | None, pixels, columns: PanelCache | None = None) -> InspectView:
    """Assemble the Inspect tab's panels; a model without attention shows the image and says so.

    columns: query columns of the figure drawn before (a click then draws only the new query's column).
    """
    if layer is None:
        figure = paper_figure(generation.image, [], None, caption="this checkpoint has no attention layers")
        return InspectView(clickable_image(generation, []), figure, "This checkpoint has **no attention layers**.", None)
    views = query_views(generation, layer, pixels)  # computed once: the figure, markers and table share them
    key_shape = layer_capture(generation, layer).key_shape
    figure = paper_figure(generation.image, views, key_shape, caption=figure_caption(generation, layer), cache=columns)
    grid = attention_grid_image(views[-1].attention_map, cell_pixels=max(4, 256 // views[-1].attention_map.shape[1])) if views else None
    return InspectView(clickable_image(generation, views), figure, describe_queries(generation, layer, views), grid)

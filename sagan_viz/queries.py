"""From clicked pixels to QueryViews and the paper figure: what an app callback or a notebook calls."""
from __future__ import annotations

from PIL import Image

from .analysis import find_peaks
from .grid import cell_to_index, pixel_to_cell
from .inspect import Generation, LayerCapture
from .layer_names import network_of
from .paper_figure import paper_figure
from .render import QUERY_COLOURS, QueryView

MAX_QUERIES = 5  # as many as Figure 1 of the paper shows, and as QUERY_COLOURS has


def layer_capture(generation: Generation, layer: str) -> LayerCapture:
    """The capture of one attention layer; ValueError listing the layers when the name is unknown."""
    return generation.layer(layer)


def image_size(generation: Generation) -> tuple[int, int]:
    """(width, height) of the generated image in pixels."""
    height, width = generation.image.shape[:2]
    return width, height


def query_view(
    generation: Generation,
    layer: str,
    pixel: tuple[float, float],
    colour,
    max_peaks: int = 3,
    display_size: tuple[int, int] | None = None,
) -> QueryView:
    """The beta row of the query cell under pixel (x, y) of the generated image, reshaped on the key grid.

    display_size (width, height) says the pixel was clicked on the image shown at that size instead.
    """
    capture = layer_capture(generation, layer)
    size = image_size(generation)
    display_size = tuple(display_size or size)
    x, y = pixel
    cell = pixel_to_cell(x, y, display_size, capture.query_shape)  # ValueError outside the image
    row = capture.attention_row(cell_to_index(cell, capture.query_shape)).reshape(capture.key_shape)
    attention_map = row.detach().float().cpu().numpy()  # (H_key, W_key)
    return QueryView(
        pixel=(x * size[0] / display_size[0], y * size[1] / display_size[1]),
        cell=cell,
        colour=tuple(colour),
        attention_map=attention_map,
        peaks=find_peaks(attention_map, max_peaks=max_peaks),
    )


def figure_caption(generation: Generation, layer: str, step: int | None = None) -> str:
    """One line naming what the figure shows: layer, gamma, weights, seed (class, truncation), step."""
    capture = layer_capture(generation, layer)
    generator = "EMA G" if generation.weights == "ema" else "raw G"
    network = f"D on the {generator} image" if network_of(layer) == "D" else generator
    parts = [f"{layer} (γ = {capture.gamma:+.3f})", network, generation.origin]
    step = generation.step if step is None else step
    if step is not None:
        parts.append(f"step {step}")
    return " · ".join(parts)


def figure_for_queries(
    generation: Generation,
    layer: str,
    pixels: list[tuple[float, float]],
    scale: int = 8,
    max_peaks: int = 3,
    step: int | None = None,
) -> Image.Image:
    """The paper figure for up to MAX_QUERIES clicked pixels (generated-image coordinates) on one layer."""
    if len(pixels) > MAX_QUERIES:
        raise ValueError(f"at most {MAX_QUERIES} queries fit in one figure, got {len(pixels)}")
    capture = layer_capture(generation, layer)
    queries = [
        query_view(generation, layer, pixel, colour, max_peaks)
        for pixel, colour in zip(pixels, QUERY_COLOURS)
    ]
    caption = figure_caption(generation, layer, step)
    return paper_figure(generation.image, queries, capture.key_shape, scale=scale, caption=caption)

"""What a click asks of a generation: the query cell under a pixel, its β row on the key grid, its peaks.

The first step of a click's one downward path: queries are computed here once (from grid.py's
coordinates, the generation's kept layer input and analysis.py's peaks), paper_figure.py draws them
with render.py's primitives, and the app only places the results.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .analysis import Peak, find_peaks
from .grid import cell_to_index, pixel_to_cell
from .inspect import Generation, LayerCapture

# A query's colour is its identity in every view: marker, figure panel, caption and table. Red, sky blue,
# green, yellow, violet: apart in hue and bright enough to read on the dark end of magma.
QUERY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64),
    (40, 170, 255),
    (60, 220, 90),
    (255, 220, 30),
    (215, 110, 255),
)
MAX_QUERIES = len(QUERY_COLOURS)  # five, as many as Figure 1 of the paper shows
MAX_KEPT_ROWS = 64  # per layer of a generation: 64 rows of 32x32 keys are 256 kB


@dataclass
class QueryView:
    """One clicked query and what it attends to."""

    pixel: tuple[float, float]  # (x, y) in generated-image pixels (0..R), x right, y down
    cell: tuple[int, int]  # query cell (row, col) on the layer's query grid
    colour: tuple[int, int, int]
    attention_map: np.ndarray  # (H_key, W_key) beta row
    peaks: list[Peak] = field(default_factory=list)
    caption: tuple[str, ...] | None = None  # the panel's caption lines; None: the row view's (max beta, ...)


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
    capture = generation.layer(layer)
    size = generation.image_size
    display_size = tuple(display_size or size)
    x, y = pixel
    cell = pixel_to_cell(x, y, display_size, capture.query_shape)  # ValueError outside the image
    attention_map, peaks = row_and_peaks(capture, cell, max_peaks)
    return QueryView(
        pixel=(x * size[0] / display_size[0], y * size[1] / display_size[1]),
        cell=cell,
        colour=tuple(colour),
        attention_map=attention_map,
        peaks=peaks,
    )


def row_and_peaks(capture: LayerCapture, cell: tuple[int, int], max_peaks: int) -> tuple[np.ndarray, list[Peak]]:
    """The β row of a query cell on the key grid and its peaks, computed once per capture and cell (each click
    shows every earlier query again; the peaks took ~0.7 ms a query)."""
    key = ("row_and_peaks", cell, max_peaks)
    if key not in capture.derived:
        row = capture.attention_row(cell_to_index(cell, capture.query_shape)).reshape(capture.key_shape)
        attention_map = row.detach().float().cpu().numpy()  # (H_key, W_key)
        attention_map.flags.writeable = False  # shared by every view of this cell
        if len(capture.derived) >= MAX_KEPT_ROWS:
            capture.derived.pop(next(iter(capture.derived)))  # the oldest
        capture.derived[key] = (attention_map, find_peaks(attention_map, max_peaks=max_peaks))
    attention_map, peaks = capture.derived[key]
    return attention_map, list(peaks)


def query_views(generation: Generation, layer: str | None, pixels, max_peaks: int = 3) -> list[QueryView]:
    """One QueryView per clicked pixel (at most MAX_QUERIES), coloured in click order; none without a layer."""
    if len(pixels) > MAX_QUERIES:
        raise ValueError(f"at most {MAX_QUERIES} queries fit in one figure, got {len(pixels)}")
    if layer is None:
        return []
    return [query_view(generation, layer, pixel, colour, max_peaks) for pixel, colour in zip(pixels, QUERY_COLOURS)]

"""Small hand-made images and query views that the figure tests share."""
from __future__ import annotations

import numpy as np

from sagan_viz.analysis import find_peaks
from sagan_viz.queries import QUERY_COLOURS, QueryView


def gradient_image(height=32, width=32) -> np.ndarray:
    """Red grows to the right, blue downwards: any flip or transpose shows."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, width)[None, :]
    image[..., 2] = np.linspace(0, 255, height)[:, None]
    return image


def one_hot_query(number: int, pixel, key_cell, key_shape=(16, 16)) -> QueryView:
    """A query whose beta holds half its mass on key_cell and spreads the rest evenly."""
    beta = np.full(key_shape, 0.5 / (key_shape[0] * key_shape[1] - 1))
    beta[key_cell] = 0.5
    cell = (int(pixel[1] * 16 / 32), int(pixel[0] * 16 / 32))
    return QueryView(pixel=pixel, cell=cell, colour=QUERY_COLOURS[number],
                     attention_map=beta, peaks=find_peaks(beta, max_peaks=3))


def clickable_parts(html: str) -> tuple[str, list[tuple[float, float]]]:
    """The served picture's path and the marker centres (image pixels) of the clickable image's HTML,
    read with a plain regular expression rather than the code that wrote it."""
    import re
    from urllib.parse import unquote

    source = re.search(r'<img class="sv-picture" src="gradio_api/file=([^"]+)"', html)
    centres = [(float(x), float(y)) for x, y in re.findall(r'<circle cx="([-\d.]+)" cy="([-\d.]+)"', html)]
    return unquote(source.group(1)), centres

"""Coordinates: displayed pixels, feature-map cells, flattened positions, key grids."""
from __future__ import annotations

import numpy as np
import torch


def pixel_to_cell(
    x: float, y: float, display_size: tuple[int, int], grid_shape: tuple[int, int]
) -> tuple[int, int]:
    """(row, col) of the feature cell under displayed pixel (x, y).

    display_size is (width, height) of the image as shown; grid_shape is (H, W) of the
    feature map. Works at any display scale and for non-square grids.
    """
    width, height = display_size
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"pixel ({x}, {y}) is outside the {width}x{height} image")
    rows, columns = grid_shape
    row = min(int(y * rows / height), rows - 1)
    column = min(int(x * columns / width), columns - 1)
    return row, column


def cell_center(cell: tuple[int, int], grid_shape: tuple[int, int], display_size: tuple[int, int]) -> tuple[float, float]:
    """(x, y) in displayed pixels of the centre of a cell of a (H, W) grid."""
    row, column = cell
    rows, columns = grid_shape
    width, height = display_size
    return (column + 0.5) * width / columns, (row + 0.5) * height / rows


def cell_to_index(cell: tuple[int, int], grid_shape: tuple[int, int]) -> int:
    """Flattened position n = row * W + col (the order of flatten_positions)."""
    row, column = cell
    rows, columns = grid_shape
    if not (0 <= row < rows and 0 <= column < columns):
        raise ValueError(f"cell {cell} is outside the {rows}x{columns} grid")
    return row * columns + column


def index_to_cell(index: int, grid_shape: tuple[int, int]) -> tuple[int, int]:
    """Inverse of cell_to_index."""
    return divmod(int(index), grid_shape[1])


def attention_row_map(attention: torch.Tensor, query_index: int, key_shape: tuple[int, int]) -> torch.Tensor:
    """beta_{j, .} for query j reshaped onto the grid the keys live on: (N_query, N_key) -> (H_key, W_key)."""
    if not 0 <= query_index < attention.shape[0]:
        raise ValueError(f"query {query_index} is outside 0..{attention.shape[0] - 1}")
    return attention[query_index].reshape(key_shape)


def image_point(index, image_size: tuple[int, int]) -> tuple[float, float]:
    """A click's (x, y) in generated-image pixels, fractions allowed, checked to be two numbers on the image."""
    width, height = image_size
    try:
        x, y = (float(value) for value in index)
    except (TypeError, ValueError):
        raise ValueError(f"a click must be two numbers (x, y), got {index!r:.60}") from None
    if not (0 <= x < width and 0 <= y < height):  # also refuses NaN
        raise ValueError(f"click ({x:g}, {y:g}) is outside the {width}x{height} image")
    return x, y


def to_display(point: tuple[float, float], image_size: tuple[int, int], display_size: tuple[int, int]):
    """(x, y) in generated-image pixels -> (x, y) in display pixels."""
    return point[0] * display_size[0] / image_size[0], point[1] * display_size[1] / image_size[1]


def rescale_pixels(pixels, from_size: tuple[int, int], to_size: tuple[int, int]) -> list[tuple[float, float]]:
    """Pixels of an image of from_size (width, height) moved to the same relative spot of one of to_size."""
    return [(x * to_size[0] / from_size[0], y * to_size[1] / from_size[1]) for x, y in pixels]


def cell_pixel_box(cell: tuple[int, int], grid_shape: tuple[int, int], image_shape: tuple[int, int]):
    """(top, bottom, left, right) of the image block a feature cell maps to: R/H x R/W pixels."""
    cell_to_index(cell, grid_shape)  # ValueError outside the grid
    (row, column), (rows, columns), (height, width) = cell, grid_shape, image_shape
    return row * height // rows, (row + 1) * height // rows, column * width // columns, (column + 1) * width // columns


def cells_along(length: int, cells: int) -> np.ndarray:
    """For each of `length` pixels along one axis, the index of the grid cell (of `cells` along it) under it."""
    return np.arange(length) * cells // length


def cell_on_grid(cell: tuple[int, int], grid_shape: tuple[int, int], other_shape: tuple[int, int]) -> tuple[int, int]:
    """The cell of another grid over the same image that covers cell (the same cell when the shapes agree)."""
    row, column = cell
    return row * other_shape[0] // grid_shape[0], column * other_shape[1] // grid_shape[1]


def cell_centres(grid_shape: tuple[int, int], aspect: float) -> np.ndarray:
    """(H*W, 2) centres (x, y) of a grid's cells, row-major, in image units: width 1, height aspect."""
    rows, columns = grid_shape
    y = (np.arange(rows) + 0.5) / rows * aspect
    x = (np.arange(columns) + 0.5) / columns
    y, x = np.meshgrid(y, x, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1)


def display_ratio(display_size: tuple[int, int], image_size: tuple[int, int]) -> float:
    """Display pixels per generated-image pixel (horizontally) of an image shown at display_size."""
    return display_size[0] / image_size[0]

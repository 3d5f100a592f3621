"""Pictures of attention: heat maps, markers and arrows (PIL); paper_figure.py lays them out as Figure 1.

Coordinates: a display image shows the generated image (W, H pixels) at some size; a point
(x, y) in generated-image pixels sits at (x * display_w / W, y * display_h / H) on it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .analysis import as_array
from .grid import cell_center, cells_along, display_ratio, to_display
from .imaging import luma, upscale_nearest
from .queries import QueryView

OUTLINE = (15, 15, 20)
SUPERSAMPLING = 4  # arrows and markers are drawn this much larger, then downsampled: smooth edges

# magma (van der Walt & Smith), sampled at 0, 0.1, ..., 1: dark purple -> orange -> pale yellow.
MAGMA = np.array([
    (0, 0, 4), (20, 14, 54), (59, 15, 112), (100, 26, 128), (140, 41, 129), (183, 55, 121),
    (222, 73, 104), (246, 110, 92), (254, 159, 109), (254, 207, 146), (252, 253, 191),
], dtype=np.float64)


def colourise(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 through the magma colour map (NaN -> 0)."""
    values = np.clip(np.nan_to_num(as_array(values)), 0.0, 1.0)
    anchors = np.linspace(0.0, 1.0, len(MAGMA))
    channels = [np.interp(values, anchors, MAGMA[:, channel]) for channel in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


def normalise_for_display(attention_map) -> np.ndarray:
    """The map divided by its maximum, so that its brightest cell is 1 (beta values are ~1/N_key)."""
    values = as_array(attention_map)
    peak = values.max() if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def upsample_to(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D grid to (height, width): each cell a solid block."""
    rows, columns = cells_along(height, values.shape[0]), cells_along(width, values.shape[1])
    return values[rows[:, None], columns[None, :]]


def common_block(length: int, cells: int, scale: int) -> int:
    """The largest divisor k of scale such that upsample_to's nearest-neighbour index over length * scale
    rows is constant on blocks of k rows, so the result can be built at length * scale / k and upscaled."""
    source = cells_along(length * scale, cells)
    for block in sorted((k for k in range(1, scale + 1) if scale % k == 0), reverse=True):
        if (source.reshape(-1, block) == source[::block, None]).all():
            return block
    return 1


def attention_overlay(image: np.ndarray, attention_map, scale: int) -> np.ndarray:
    """(H, W, 3) uint8 image -> (H*scale, W*scale, 3): the image dimmed, the normalised map blended on top."""
    height, width = image.shape[:2]
    normalised = normalise_for_display(attention_map)
    # Blend at the coarsest resolution that loses nothing (the image's when the key grid divides it), then
    # upscale nearest: the same pixels as blending at full size, a fraction of the work.
    block = min(common_block(height, normalised.shape[0], scale), common_block(width, normalised.shape[1], scale))
    fine = scale // block
    # The image in grey, so that its own colours are never read as attention.
    grey = luma(upscale_nearest(image, fine))
    values = upsample_to(normalised, grey.shape[0], grey.shape[1])
    heat = colourise(values).astype(np.float64)
    # Opacity rises with attention: unattended areas keep a faint image, attended ones are pure colour.
    opacity = (0.45 + 0.55 * values)[..., None]
    blended = (1 - opacity) * 0.7 * grey[..., None] + opacity * heat
    return upscale_nearest(np.clip(np.rint(blended), 0, 255).astype(np.uint8), block)


def attention_grid_image(attention_map, cell_pixels: int) -> np.ndarray:
    """The key grid itself: each cell a cell_pixels square in normalised colour, 1-pixel dark lines between."""
    values = normalise_for_display(attention_map)
    rows, columns = values.shape
    grid = np.empty((rows * cell_pixels + 1, columns * cell_pixels + 1, 3), np.uint8)
    grid[:] = OUTLINE
    cells = upscale_nearest(colourise(values), cell_pixels)
    grid[:-1, :-1] = cells
    grid[::cell_pixels, :] = OUTLINE
    grid[:, ::cell_pixels] = OUTLINE
    return grid


Box = tuple[float, float, float, float]  # (left, top, right, bottom) in display pixels


def bounding_box(points) -> Box | None:
    """The smallest box holding every (x, y) point (None for no points)."""
    points = np.asarray(list(points), float).reshape(-1, 2)
    if not len(points):
        return None
    (left, top), (right, bottom) = points.min(axis=0), points.max(axis=0)
    return float(left), float(top), float(right), float(bottom)


class Ink:
    """The colours a Painting uses, as the labels it paints them with (label 0: nothing painted)."""

    def __init__(self) -> None:
        self.colours: list[tuple[int, int, int]] = []

    def __call__(self, colour) -> int:
        """The label of an RGB colour, allocated on first use."""
        colour = tuple(int(channel) for channel in colour[:3])
        if colour not in self.colours:
            if len(self.colours) == 255:
                raise ValueError("a painting uses at most 255 colours")
            self.colours.append(colour)
        return self.colours.index(colour) + 1

    def palette(self, coverage: bool = False) -> list[int]:
        """Label -> RGB as a flat palette: each label's colour, black for label 0; with coverage, white for
        every label (a grey level is then the share of a pixel painted)."""
        colours = [(255, 255, 255)] * len(self.colours) if coverage else self.colours
        return [0, 0, 0] + [channel for colour in colours for channel in colour]


@dataclass(frozen=True)
class Painting:
    """What paint_smoothly_into paints: paint(draw, factor, origin, ink) and the box it stays inside.

    paint draws the display point (x, y) at layer_point((x, y), factor, origin) = ((x - origin[0]) * factor,
    (y - origin[1]) * factor), each colour as ink(colour): a label, later shapes over earlier ones.
    """

    paint: Callable[[ImageDraw.ImageDraw, int, tuple[int, int], Ink], None]
    box: Box | None


def painted_region(display: Image.Image, painting: Painting) -> tuple[int, int, int, int] | None:
    """The whole-pixel part of display that paint_smoothly_into supersamples: the painting's box with a margin
    for anti-aliased edges and outlines, clipped to the display."""
    if painting.box is None:
        return None
    margin = 2  # pixels: smoothed edges and outline widths reach a little past the shapes' corners
    left, top = max(0, int(np.floor(painting.box[0])) - margin), max(0, int(np.floor(painting.box[1])) - margin)
    right = min(display.size[0], int(np.ceil(painting.box[2])) + margin)
    bottom = min(display.size[1], int(np.ceil(painting.box[3])) + margin)
    return (left, top, right, bottom) if right > left and bottom > top else None


def draw_smoothly(display: Image.Image, painting: Painting) -> Image.Image:
    """paint_smoothly_into a copy of display, as RGB."""
    result = display.convert("RGB")
    paint_smoothly_into(result, painting)
    return result


def paint_smoothly_into(result: Image.Image, painting: Painting) -> None:
    """Paint SUPERSAMPLING times larger, box-filter down, and composite onto an RGB image in place.

    The shapes are painted as palette labels, one byte a pixel, only over the painting's box; each pixel then
    gets every colour in exact proportion to the share of it that colour covers, and the image beneath
    the uncovered rest (Image.reduce is a box filter). One byte, not four, per supersampled pixel:
    a click's arrows and markers took 20-25% less time than with an RGBA layer (measured, README "Many users").
    """
    region = painted_region(result, painting)
    if region is None:
        return
    left, top, right, bottom = region
    labels = Image.new("P", ((right - left) * SUPERSAMPLING, (bottom - top) * SUPERSAMPLING), 0)
    ink = Ink()
    painting.paint(ImageDraw.Draw(labels), SUPERSAMPLING, (left, top), ink)
    # Premultiplied: the colours reduced on black, and the share of each pixel that anything covers.
    labels.putpalette(ink.palette())
    colour = np.asarray(labels.convert("RGB").reduce(SUPERSAMPLING), np.float32)
    labels.putpalette(ink.palette(coverage=True))
    covered = np.asarray(labels.convert("L").reduce(SUPERSAMPLING), np.float32)[..., None] / 255
    beneath = np.asarray(result.crop(region), np.float32)
    painted = np.rint(beneath * (1 - covered) + colour).clip(0, 255).astype(np.uint8)
    result.paste(Image.fromarray(painted), (left, top))


def layer_point(point, factor: int, origin: tuple[int, int]) -> tuple[float, float]:
    """A display point (x, y) -> its place on paint_smoothly_into's supersampled layer."""
    return (point[0] - origin[0]) * factor, (point[1] - origin[1]) * factor


def marker_radius(scale: float) -> float:
    """A query marker's radius in display pixels, for a display of `scale` pixels per image pixel."""
    return max(4.0, 0.9 * scale)


def draw_markers(display: Image.Image, queries, image_size: tuple[int, int]) -> Image.Image:
    """Filled circles in each query's colour with a dark outline, at each query pixel, later ones on top."""
    radius = marker_radius(display_ratio(display.size, image_size))
    result = display.convert("RGB")
    for query in queries:
        # One small supersampled box per marker: markers far apart would otherwise make one box that
        # covers most of the display, 16 times over.
        centre = to_display(query.pixel, image_size, display.size)
        paint_smoothly_into(result, marker_painting(centre, radius, tuple(query.colour)))
    return result


def marker_painting(centre: tuple[float, float], radius: float, colour) -> Painting:
    """One query marker: a disc in colour with a dark outline."""
    def paint(draw: ImageDraw.ImageDraw, factor: int, origin, ink: Ink) -> None:
        x, y = layer_point(centre, factor, origin)
        r = radius * factor
        draw.ellipse((x - r, y - r, x + r, y + r), fill=ink(colour), outline=ink(OUTLINE), width=round(0.3 * r))

    return Painting(paint, (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius))


def arrow_polygon(start, end, shaft: float, head_length: float, head_width: float) -> list[tuple[float, float]]:
    """The 7 corners of an arrow from start to end (its tip), in drawing order."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = (end - start) / np.linalg.norm(end - start)
    normal = np.array([-direction[1], direction[0]])
    base = end - direction * head_length
    corners = [
        start + normal * shaft / 2, base + normal * shaft / 2, base + normal * head_width / 2, end,
        base - normal * head_width / 2, base - normal * shaft / 2, start - normal * shaft / 2,
    ]
    return [tuple(corner) for corner in corners]


def outlined_arrow(start, end, shaft: float, outline: float) -> tuple[list, list]:
    """(dark outline polygon, coloured polygon) of an arrow with the given shaft width, in pixels."""
    head_length, head_width = 1.6 * shaft + 6, 1.8 * shaft + 7
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = (end - start) / np.linalg.norm(end - start)
    tip_out = end + direction * 2 * outline  # the outline's tip is sharper: push it out
    dark = arrow_polygon(
        start - direction * outline, tip_out, shaft + 2 * outline, head_length + 3 * outline, head_width + 4 * outline
    )
    return dark, arrow_polygon(start, end, shaft, head_length, head_width)


def ring_radius(hole: float, width: float, outline: float) -> float:
    """Outer radius of draw_ring's ring."""
    return hole + width + 2 * outline  # PIL draws an ellipse's width inwards from its box


def draw_ring(draw: ImageDraw.ImageDraw, centre, hole: float, width: float, outline: float, colour: int,
              dark: int) -> None:
    """A ring in colour with dark edges around a clear hole of the given radius (lengths supersampled;
    colours as Ink labels)."""
    x, y = centre
    outer = ring_radius(hole, width, outline)
    draw.ellipse((x - outer, y - outer, x + outer, y + outer), outline=dark, width=round(width + 2 * outline))
    inner = outer - outline
    draw.ellipse((x - inner, y - inner, x + inner, y + inner), outline=colour, width=round(width))


def draw_arrows(display: Image.Image, query: QueryView, key_shape, image_size) -> Image.Image:
    """An arrow from the query to each peak's key-cell centre, as thick as the peak's mass, outlined dark."""
    scale = display_ratio(display.size, image_size)
    start = np.asarray(to_display(query.pixel, image_size, display.size))
    cell_radius = 0.5 * display.size[0] / key_shape[1]
    outline = max(1.0, 0.15 * scale)
    shapes = []  # in drawing order, display pixels: ("ring", centre, hole, width) or ("polygon", corners, colour)
    for peak in query.peaks:
        end = np.asarray(cell_center(peak.cell, tuple(key_shape), display.size))
        shaft = max(2.0, scale * (0.25 + 0.9 * np.sqrt(peak.mass)))
        length = np.linalg.norm(end - start)
        if length < max(2 * shaft + 8, 3 * cell_radius):  # the peak is (next to) the query: ring it
            shapes.append(("ring", end, 1.3 * cell_radius, shaft))  # the hole keeps the key cell itself visible
            continue
        # Stop at the cell's edge so that the arrowhead does not hide the peak it points at.
        tip = end - (end - start) * min(0.8 * cell_radius, length - 2 * shaft - 8) / length
        dark, coloured = outlined_arrow(start, tip, shaft, outline)
        shapes += [("polygon", dark, OUTLINE), ("polygon", coloured, tuple(query.colour))]

    def paint(draw: ImageDraw.ImageDraw, factor: int, origin, ink: Ink) -> None:
        for kind, *shape in shapes:
            if kind == "ring":
                centre, hole, width = shape
                draw_ring(draw, layer_point(centre, factor, origin), hole * factor, width * factor,
                          outline * factor, ink(query.colour), ink(OUTLINE))
            else:
                corners, colour = shape
                draw.polygon([layer_point(corner, factor, origin) for corner in corners], fill=ink(colour))

    corners = []
    for kind, *shape in shapes:
        if kind == "ring":
            outer = ring_radius(shape[1], shape[2], outline)
            corners += [shape[0] - outer, shape[0] + outer]
        else:
            corners += shape[0]
    return draw_smoothly(display, Painting(paint, bounding_box(corners)))

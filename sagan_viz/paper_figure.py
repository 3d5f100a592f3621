"""The paper's Figure 1: the image with query markers, then one attention panel per query, captions beneath.

Drawn from the QueryViews of queries.py with render.py's primitives (the second step of a click's path).

A query's column (its panel and caption) depends only on that query, so a PanelCache keeps the columns
already drawn: a click that adds a fifth query draws one new column and the markers, not five columns.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .analysis import as_array, peaks_mass_share
from .figure_text import draw_text, figure_font, text_width
from .imaging import upscale_nearest
from .inspect import Generation
from .layer_names import network_of
from .queries import QueryView, query_views
from .render import OUTLINE, attention_overlay, draw_arrows, draw_markers

BACKGROUND = (255, 255, 255)
TEXT = (30, 30, 35)


@dataclass(frozen=True)
class FigureLayout:
    """Geometry of paper_figure, in pixels."""

    panel_size: tuple[int, int]  # (width, height) of each image panel
    gap: int  # margin around the figure and between panels
    font_size: int
    line_height: int
    title_lines: tuple[str, ...]  # the caption, wrapped to the figure's width
    panels: int
    caption_lines: int = 4  # text lines under each panel

    @property
    def title_height(self) -> int:
        """Height of the caption block above the panels (0 without a caption)."""
        return len(self.title_lines) * self.line_height + self.line_height // 2 if self.title_lines else 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole figure."""
        width = 2 * self.gap + self.panels * self.panel_size[0] + (self.panels - 1) * self.gap
        height = self.gap + self.title_height + self.panel_size[1] + self.gap // 2
        return width, height + self.caption_lines * self.line_height + self.gap

    @property
    def column_height(self) -> int:
        """Height of a panel with its caption and the margin beneath: the figure's height below the title."""
        return self.size[1] - self.panel_origin(0)[1]

    def panel_origin(self, index: int) -> tuple[int, int]:
        """Top-left corner of panel index (0 = the image)."""
        return self.gap + index * (self.panel_size[0] + self.gap), self.gap + self.title_height


def font_size(panel_width: int) -> int:
    """Text size for panels of a given width: about 17 characters per line, 10 to 15 pixels."""
    return int(np.clip(panel_width / 10.5, 10, 15))


def wrap_caption(caption: str, width: float, size: int) -> tuple[str, ...]:
    """The caption's ' · '-separated parts packed into as few lines of at most width pixels as they fit."""
    lines = []
    for part in caption.split(" · ") if caption else []:
        joined = f"{lines[-1]} · {part}" if lines else part
        if lines and text_width(joined, size) <= width:
            lines[-1] = joined
        else:
            lines.append(part)
    return tuple(lines)


def figure_layout(image_size: tuple[int, int], query_count: int, scale: int, caption: str = "",
                  title_inset: int = 0) -> FigureLayout:
    """The geometry paper_figure uses for an image of (W, H) pixels and query_count panels; the caption
    wraps title_inset pixels short of the right edge (clear of a button the page lays over that corner)."""
    panel_size, gap, panels = (image_size[0] * scale, image_size[1] * scale), max(8, 2 * scale), 1 + query_count
    size = font_size(panel_size[0])
    text_width = panels * panel_size[0] + (panels - 1) * gap - title_inset
    return FigureLayout(
        panel_size=panel_size, gap=gap, font_size=size, line_height=int(1.45 * size),
        title_lines=wrap_caption(caption, text_width, size + 1), panels=panels,
    )


def fitted_font(lines: list[str], width: float, size: int) -> ImageFont.FreeTypeFont:
    """The largest font no bigger than size in which every line fits width (down to 7 pixels)."""
    for candidate in range(size, 7, -1):
        if all(text_width(line, candidate) <= width for line in lines):
            return figure_font(candidate)
    return figure_font(7)


def query_caption(query: QueryView, number: int) -> list[str]:
    """The true scale of a panel: max beta, how many times uniform, the arrowed peaks' share of mass."""
    if query.caption is not None:
        return list(query.caption)
    values = as_array(query.attention_map)
    maximum = float(values.max())
    return [
        f"query {number}: cell {query.cell}",
        f"max β {maximum:.4f}",
        f"= {maximum * values.size:.1f}× uniform",
        f"arrows: {100 * peaks_mass_share(query.peaks):.0f}% of β" if query.peaks else "no peak stands out",
    ]


def image_caption(query_count: int, key_shape) -> list[str]:
    """What the image panel's scale is: the key grid and the uniform beta every map is compared with."""
    if key_shape is None:  # the image alone, from a model without attention
        return []
    cells = key_shape[0] * key_shape[1]
    queries = f"{query_count} quer{'y' if query_count == 1 else 'ies'}"
    return [queries, f"keys {key_shape[0]}×{key_shape[1]}", f"uniform β = 1/{cells}", f"= {1 / cells:.4f}"]


def write_lines(draw, origin, lines: list[str], font, line_height: int, colour=None) -> None:
    """Text lines under a panel; a swatch of the query's colour before the first when one is given."""
    x, y = origin
    for index, line in enumerate(lines):
        indent = 0
        if index == 0 and colour is not None:
            side = int(0.65 * line_height)
            top = y + (line_height - side) // 2 - 1
            draw.rectangle((x, top, x + side, top + side), fill=tuple(colour), outline=OUTLINE)
            indent = line_height
        draw_text(draw, (x + indent, y + index * line_height), line, font, TEXT)


def text_block(lines: list[str], font, line_height: int, width: int, colour=None) -> Image.Image:
    """write_lines on a strip of background width wide, with half a line to spare beneath for descenders."""
    block = Image.new("RGB", (width, len(lines) * line_height + line_height // 2), BACKGROUND)
    write_lines(ImageDraw.Draw(block), (0, 0), lines, font, line_height, colour)
    return block


def cached_text_block(cache, lines: list[str], font, line_height: int, width: int) -> Image.Image:
    """text_block, from cache when one is given (the title and the image's caption recur click after click)."""
    if cache is None:
        return text_block(lines, font, line_height, width)
    key = repr(("text", tuple(lines), font.getname(), font.size, line_height, width))
    return cache.get_or_draw(key, lambda: text_block(lines, font, line_height, width))


class PanelCache:
    """Query columns and text blocks already drawn, keyed by everything drawn in them; the oldest are dropped.

    Shared by the sessions of one app (a key says exactly what a column shows, so no session can get
    another's by mistake); a lock because Gradio runs callbacks in threads.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._columns: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_draw(self, key: str, draw) -> Image.Image:
        """The column under key, drawn with draw() on a miss (outside the lock: drawing takes milliseconds)."""
        with self._lock:
            if key in self._columns:
                self._columns.move_to_end(key)
                return self._columns[key]
        column = draw()
        with self._lock:
            self._columns[key] = column
            while len(self._columns) > self.capacity:
                self._columns.popitem(last=False)
        return column

    def __len__(self) -> int:
        return len(self._columns)


def column_key(image: np.ndarray, query: QueryView, number: int, key_shape, scale: int, layout: FigureLayout,
               font: ImageFont.FreeTypeFont) -> str:
    """A digest of every input of query_column."""
    digest = hashlib.blake2b(digest_size=20)
    for array in (np.ascontiguousarray(image), np.ascontiguousarray(as_array(query.attention_map))):
        digest.update(repr((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    peaks = [(peak.cell, peak.value, peak.mass) for peak in query.peaks]
    described = (query.pixel, query.cell, tuple(query.colour), peaks, query.caption, number, tuple(key_shape), scale,
                 layout.panel_size, layout.gap, layout.line_height, layout.caption_lines, font.getname(), font.size)
    digest.update(repr(described).encode())
    return digest.hexdigest()


def query_column(image: np.ndarray, query: QueryView, number: int, key_shape, scale: int, layout: FigureLayout,
                 font: ImageFont.FreeTypeFont) -> Image.Image:
    """One query's panel (its map over the image, arrows to its peaks, its marker) with its caption beneath,
    on a strip of background as tall as the figure below the title."""
    height, width = image.shape[:2]
    image_size = (width, height)
    panel = Image.fromarray(attention_overlay(image, query.attention_map, scale))
    panel = draw_markers(draw_arrows(panel, query, key_shape, image_size), [query], image_size)
    column = Image.new("RGB", (layout.panel_size[0], layout.column_height), BACKGROUND)
    column.paste(panel, (0, 0))
    write_lines(ImageDraw.Draw(column), (0, layout.panel_size[1] + layout.gap // 2), query_caption(query, number),
                font, layout.line_height, query.colour)
    return column


def paper_figure(
    image: np.ndarray, queries: list[QueryView], key_shape, scale: int = 8, caption: str = "",
    cache: PanelCache | None = None, title_inset: int = 0, image_lines: list[str] | None = None,
) -> Image.Image:
    """Figure 1 of SAGAN: the image with query markers, then one attention panel with arrows per query.

    With a cache, columns of queries drawn before are reused; the figure is the same pixel for pixel.
    title_inset: see figure_layout. image_lines: the caption under the image, instead of the key grid's.
    """
    height, width = image.shape[:2]
    image_size = (width, height)
    layout = figure_layout(image_size, len(queries), scale, caption, title_inset)
    figure = Image.new("RGB", layout.size, BACKGROUND)
    text_width_available = layout.size[0] - 2 * layout.gap - title_inset
    title_font = fitted_font(layout.title_lines, text_width_available, layout.font_size + 1)
    if layout.title_lines:  # pasted first: the panels below cover the block's spare strip
        title = cached_text_block(cache, list(layout.title_lines), title_font, layout.line_height, text_width_available)
        figure.paste(title, (layout.gap, layout.gap))
    captions = [image_caption(len(queries), key_shape) if image_lines is None else list(image_lines)]
    captions += [query_caption(query, number) for number, query in enumerate(queries, start=1)]
    # One font for every panel, so that numbers compare at a glance.
    lines = [line for panel_lines in captions for line in panel_lines]
    font = fitted_font(lines, layout.panel_size[0] - layout.line_height, layout.font_size)
    left, top = layout.panel_origin(0)
    figure.paste(draw_markers(Image.fromarray(upscale_nearest(image, scale)), queries, image_size), (left, top))
    if captions[0]:
        caption = cached_text_block(cache, captions[0], font, layout.line_height, layout.panel_size[0])
        figure.paste(caption, (left, top + layout.panel_size[1] + layout.gap // 2))
    for number, query in enumerate(queries, start=1):
        arguments = (image, query, number, key_shape, scale, layout, font)
        if cache is None:
            column = query_column(*arguments)
        else:
            column = cache.get_or_draw(column_key(*arguments), lambda: query_column(*arguments))  # noqa: B023 (called now)
        figure.paste(column, layout.panel_origin(number))
    return figure


def figure_caption(generation: Generation, layer: str, step: int | None = None) -> str:
    """One line naming what the figure shows: layer, gamma, weights, seed (class, truncation), step."""
    capture = generation.layer(layer)
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
    views = query_views(generation, layer, pixels, max_peaks)
    caption = figure_caption(generation, layer, step)
    return paper_figure(generation.image, views, generation.layer(layer).key_shape, scale=scale, caption=caption)

"""The image a user clicks to place queries: the generated picture at its own resolution, scaled up by the
browser (nearest neighbour), with the query markers drawn over it as SVG.

A click therefore sends the server a point and gets back a few hundred bytes of markers: the picture
itself is fetched once per generation, not once per click (before, every click re-encoded and re-sent an
upscaled PNG with the markers painted in: benchmarks/README.md). The point arrives as a Gradio select
event whose index is (x, y) in generated-image pixels, fractions included.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple
from urllib.parse import quote

import gradio as gr
import numpy as np

from ..grid import image_point
from ..inspect import Generation
from ..queries import QUERY_COLOURS, QueryView
from ..render import OUTLINE, marker_radius
from .views import DISPLAY_PIXELS, display_scale

# Sends the clicked point in generated-image pixels (the <img> is the picture at its own resolution).
# Clicks that miss the picture (the margin around it) send nothing.
CLICK_SCRIPT = """
element.addEventListener('click', (event) => {
  const picture = element.querySelector('img.sv-picture');
  if (!picture || !picture.naturalWidth) return;
  const box = picture.getBoundingClientRect();
  const across = (event.clientX - box.left) / box.width, down = (event.clientY - box.top) / box.height;
  if (!(across >= 0 && across < 1 && down >= 0 && down < 1)) return;
  trigger('select', {index: [across * picture.naturalWidth, down * picture.naturalHeight], value: null});
});
"""
STYLE = f"""
.sv-clickable {{ position: relative; max-width: {DISPLAY_PIXELS}px; margin: 0 auto; line-height: 0; }}
.sv-picture {{ width: 100%; height: auto; image-rendering: pixelated; cursor: crosshair; user-select: none; }}
.sv-markers {{ position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }}
.sv-empty {{ padding: 2em; text-align: center; opacity: 0.7; line-height: 1.4; }}
.sv-label {{ font-size: var(--block-label-text-size, 0.85em); color: var(--block-label-text-color, #555);
             margin: 0 0 0.4em 0; line-height: 1.4; }}
"""
# The label is part of the component's own HTML: Gradio's block label would put a "code" icon beside it.
TEMPLATE = '<div class="sv-label">${label}</div>${value}'
EMPTY_TEXT = "Generate an image, then click it to add queries."


class Marker(NamedTuple):
    """A point to mark on the clickable image, in its colour (a QueryView carries the same two fields)."""

    pixel: tuple[float, float]  # (x, y) in generated-image pixels
    colour: tuple[int, int, int]


def query_markers(pixels) -> list[Marker]:
    """A marker per query pixel, coloured in click order as the tabs colour their maps (QUERY_COLOURS)."""
    return [Marker(tuple(pixel), QUERY_COLOURS[index]) for index, pixel in enumerate(pixels)]


def file_url(path: str) -> str:
    """The URL, relative to the page, at which Gradio serves a file of a folder set with gr.set_static_paths."""
    return "gradio_api/file=" + quote(str(path))


def marker_svg(markers: Sequence[Marker | QueryView], image_size: tuple[int, int]) -> str:
    """SVG circles in generated-image units, sized and outlined as render.draw_markers paints them."""
    width, height = image_size
    scale = display_scale(width)  # the picture is shown at about this many screen pixels per image pixel
    radius = marker_radius(scale) / scale
    outline = 0.3 * radius
    circles = "".join(
        f'<circle cx="{marker.pixel[0]:.3f}" cy="{marker.pixel[1]:.3f}" r="{radius - outline / 2:.3f}" '
        f'fill="rgb{tuple(marker.colour)}" stroke="rgb{OUTLINE}" stroke-width="{outline:.3f}"/>'
        for marker in markers
    )
    return f'<svg class="sv-markers" viewBox="0 0 {width} {height}" aria-hidden="true">{circles}</svg>'


def clickable_html(picture_path: str, image: np.ndarray, markers: Sequence[Marker | QueryView]) -> str:
    """The component's value: the picture (a served PNG of image, at its own size) and its markers."""
    height, width = image.shape[:2]
    description = f"the generated image, {width}×{height} pixels: click to add a query"
    return (f'<div class="sv-clickable"><img class="sv-picture" src="{escape(file_url(picture_path))}" '
            f'alt="{escape(description)}" width="{width}" height="{height}" draggable="false">'
            f"{marker_svg(markers, (width, height))}</div>")


def clicked_image_pixel(generation: Generation, index) -> tuple[float, float]:
    """The select event's index: (x, y) in generated-image pixels, checked to lie on the image."""
    height, width = generation.image.shape[:2]
    return image_point(index, (width, height))


def clickable_image_component(elem_id: str, label: str, empty_text: str = EMPTY_TEXT,
                              scale: int | None = None) -> gr.HTML:
    """A gr.HTML showing clickable_html values (empty_text until the first); wire its .select like a gr.Image's."""
    return gr.HTML(f'<div class="sv-empty">{escape(empty_text)}</div>', label=label, show_label=False,
                   elem_id=elem_id, html_template=TEMPLATE, js_on_load=CLICK_SCRIPT, css_template=STYLE,
                   apply_default_css=False, container=True, scale=scale)

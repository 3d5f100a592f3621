"""What the studio's panels show, assembled from library calls (no Gradio here, so it is testable)."""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np
from PIL import Image

from ..analysis import peaks_mass_share
from ..attention_views import attention_effect, reverse_view
from ..inspect import Generation, non_finite_warning
from ..paper_figure import PanelCache, figure_caption, paper_figure
from ..queries import QUERY_COLOURS, QueryView, query_views
from ..render import attention_grid_image

MODES = ("row", "column", "effect")  # where a query looks / who looks at a key / where attention changes x
DISPLAY_PIXELS = 512  # the clickable image is shown about this wide (the browser scales it up, nearest)
PANEL_PIXELS = 256  # the figure's panels: 8x a 32-px image, 2x a 128-px one (8x made 1024-px panels, 92 ms a click)


@dataclass
class InspectView:
    """Everything the Inspect tab shows for one (generation, layer, queries)."""

    markers: list[QueryView]  # the points to mark on the clickable image
    figure: Image.Image  # image + one attention map per query, with arrows
    details: str  # HTML: per-query true scale of beta
    grid: np.ndarray | None  # raw beta grid of the newest query (only when asked for)


def display_scale(resolution: int) -> int:
    """Integer upscale factor so the clickable image is about DISPLAY_PIXELS wide."""
    return max(1, DISPLAY_PIXELS // resolution)


def figure_scale(resolution: int) -> int:
    """Integer upscale factor so each panel of the figure is about PANEL_PIXELS wide."""
    return max(1, PANEL_PIXELS // resolution)


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain HTML table; cells are escaped, headers are written as given (they may hold <sub>)."""
    head = "".join(f"<th>{header}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def describe_queries(generation: Generation, layer: str, views: list[QueryView]) -> str:
    """HTML: the true scale of each query's beta row (a table the page shows as it is, without parsing Markdown:
    that cost a click ~6 ms in the browser)."""
    capture = generation.layer(layer)
    key_count = capture.key_count
    intro = (
        f"<p><b>{layer}</b>: queries on a {capture.query_shape[0]}×{capture.query_shape[1]} grid, keys on "
        f"{capture.key_shape[0]}×{capture.key_shape[1]} (N_key = {key_count}, uniform β = {1 / key_count:.2e}); "
        f"γ = {capture.gamma:+.4f}. Maps are scaled to their own maximum for display; the true values are below.</p>"
    )
    rows = []
    for index, view in enumerate(views):
        peak = float(view.attention_map.max())
        share = f"{peaks_mass_share(view.peaks):.0%}" if view.peaks else "no arrows: no peak stands out"
        rows.append([index + 1, f"({view.pixel[0]:.0f}, {view.pixel[1]:.0f})", view.cell, f"{peak:.2e}",
                     f"{peak * key_count:.1f}×", share])
    if not views:
        rows.append(["–", "click the image to add a query", "", "", "", ""])
    headers = ["query", "pixel (x, y)", "cell (row, col)", "max β", "max β ÷ uniform", "mass in arrowed peaks"]
    return intro + html_table(headers, rows)


def describe_keys(generation: Generation, layer: str, views: list[QueryView]) -> str:
    """HTML: how much attention each clicked key position receives (columns of beta)."""
    capture = generation.layer(layer)
    uniform = 1 / capture.key_count
    intro = (
        f"<p><b>{layer}</b>, reverse view: each click picks a <b>key</b> cell on the {capture.key_shape[0]}×"
        f"{capture.key_shape[1]} key grid; its map, on the {capture.query_shape[0]}×{capture.query_shape[1]} query "
        f"grid, is the column β<sub>·,i</sub>: how much every query puts on it. Columns do not sum to 1; an "
        f"average key receives N_query/N_key of the rows' mass. Each map is scaled to its own maximum.</p>"
    )
    rows = []
    for index, view in enumerate(views):
        received = float(view.attention_map.sum()) / (view.attention_map.size * uniform)
        rows.append([index + 1, f"({view.pixel[0]:.0f}, {view.pixel[1]:.0f})", view.cell,
                     f"{view.attention_map.max():.2e}", f"{view.attention_map.max() / uniform:.1f}×", f"{received:.2f}×"])
    if not views:
        rows.append(["–", "click the image to pick a key", "", "", "", ""])
    headers = ["key", "pixel (x, y)", "key cell", "max β to it", "÷ uniform", "received ÷ average key"]
    return intro + html_table(headers, rows)


def effect_view(generation: Generation, layer: str) -> tuple[QueryView, str]:
    """The attention effect ‖γ·o_j‖ / ‖x_j‖ as one panel over the query grid, and its numbers in HTML."""
    capture = generation.layer(layer)
    effect = attention_effect(capture)  # (H, W)
    strongest = tuple(int(i) for i in np.unravel_index(effect.argmax(), effect.shape))
    caption = ("attention effect", "‖γ·o_j‖ / ‖x_j‖", f"max {effect.max():.3f} at {strongest}", f"mean {effect.mean():.3f}")
    view = QueryView(pixel=(-1.0, -1.0), cell=strongest, colour=QUERY_COLOURS[0], attention_map=effect, peaks=[],
                     caption=caption)
    details = (
        f"<p><b>{layer}</b>, where attention acts: at every position j of the {capture.query_shape[0]}×"
        f"{capture.query_shape[1]} grid, ‖γ·o<sub>j</sub>‖ / ‖x<sub>j</sub>‖, how much the attention branch "
        f"changes the features relative to what comes in (γ = {capture.gamma:+.4f}). Largest <b>{effect.max():.3f}</b> "
        f"at cell {strongest}, mean {effect.mean():.3f}, smallest {effect.min():.3f}. Scaled to its maximum for display.</p>"
    )
    return view, details


def newest_grid(views: list[QueryView], wanted: bool, newest: int | None = None) -> np.ndarray | None:
    """The raw grid of the newest view's map (views[newest]; the last without), one block of at least 4 pixels
    per cell (about 256 px wide)."""
    if not wanted or not views:
        return None
    attention_map = views[-1 if newest is None or newest >= len(views) else newest].attention_map
    return attention_grid_image(attention_map, cell_pixels=max(4, 256 // attention_map.shape[1]))


def inspect_view(generation: Generation, layer: str | None, pixels, columns: PanelCache | None = None,
                 mode: str = "row", with_grid: bool = True, newest: int | None = None) -> InspectView:
    """Assemble the Inspect tab's panels; a model without attention shows the image and says so.

    mode "row": each pixel is a query and its map the beta row; "column": each pixel is a key and its map
    the beta column on the query grid; "effect": one map of where attention changes the features.
    columns: query columns of the figure drawn before (a click then draws only the new query's column).
    with_grid: draw the raw grid of the newest map (the studio does only while it is shown).
    newest: which of pixels was clicked last (state.add_query reuses slots; default the last).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    problem = generation.problem
    if layer is None and problem is None:
        figure = paper_figure(generation.image, [], None, caption="this checkpoint has no attention layers")
        return InspectView([], figure, "<p>This checkpoint has <b>no attention layers</b>.</p>", None)
    views = [] if problem else query_views(generation, layer, pixels)  # once: figure, markers and table share them
    if not all(np.isfinite(view.attention_map).all() for view in views):
        problem = non_finite_warning(f"β of {layer}")
    if problem:  # one warning instead of numbers computed from NaN/inf
        figure = paper_figure(generation.image, [], None, caption="non-finite values (NaN/inf): nothing to show")
        return InspectView([], figure, f"<p>⚠️ <b>{escape(problem)}</b></p>", None)
    capture = generation.layer(layer)
    scale, caption = figure_scale(generation.image.shape[1]), figure_caption(generation, layer)
    if mode != "row":
        return other_view(generation, layer, pixels, mode, scale, caption, columns, with_grid, newest)
    figure = paper_figure(generation.image, views, capture.key_shape, scale=scale, caption=caption, cache=columns)
    return InspectView(views, figure, describe_queries(generation, layer, views), newest_grid(views, with_grid, newest))


def other_view(generation: Generation, layer: str, pixels, mode: str, scale: int, caption: str,
               columns: PanelCache | None, with_grid: bool, newest: int | None = None) -> InspectView:
    """The reverse ("column") or attention-effect ("effect") panels of inspect_view."""
    capture = generation.layer(layer)
    grid_lines = [f"queries {capture.query_shape[0]}×{capture.query_shape[1]}"]
    if mode == "column":
        views = [reverse_view(generation, layer, pixel, QUERY_COLOURS[i]) for i, pixel in enumerate(pixels)]
        details = describe_keys(generation, layer, views)
        markers = views
    else:
        effect, details = effect_view(generation, layer)
        views, markers = [effect], []
    figure = paper_figure(generation.image, views, capture.query_shape, scale=scale, caption=caption, cache=columns,
                          image_lines=grid_lines + ["keys clicked" if mode == "column" else "", ""])
    return InspectView(markers, figure, details, newest_grid(views, with_grid, newest if mode == "column" else None))

"""The paper-style figure's column cache: the same pixels as drawing every column, for less work."""
from __future__ import annotations

import numpy as np
from figure_helpers import gradient_image, one_hot_query

from sagan_viz.paper_figure import PanelCache, paper_figure

CLICKS = [((4.0, 4.0), (12, 3)), ((28.0, 6.0), (2, 14)), ((16.0, 16.0), (8, 8)), ((6.0, 27.0), (0, 0)),
          ((30.0, 30.0), (15, 15))]


def test_a_cached_figure_equals_the_uncached_one_click_after_click():
    cache = PanelCache()
    queries = []
    for number, (pixel, hot_cell) in enumerate(CLICKS):
        queries.append(one_hot_query(number, pixel, hot_cell))
        cached = paper_figure(gradient_image(), queries, (16, 16), caption="G.attn0 · seed 7", cache=cache)
        drawn = paper_figure(gradient_image(), queries, (16, 16), caption="G.attn0 · seed 7")
        assert np.array_equal(np.asarray(cached), np.asarray(drawn))


def test_a_click_draws_only_the_new_querys_column(monkeypatch):
    import sagan_viz.paper_figure as paper

    drawn = []
    original = paper.query_column
    monkeypatch.setattr(paper, "query_column", lambda *args: drawn.append(args[2]) or original(*args))
    cache = PanelCache()
    queries = []
    for number, (pixel, hot_cell) in enumerate(CLICKS[:4]):
        queries.append(one_hot_query(number, pixel, hot_cell))
        paper_figure(gradient_image(), queries, (16, 16), cache=cache)
    assert drawn == [1, 2, 3, 4]  # query numbers of the columns drawn: each once


def test_the_cache_forgets_the_oldest_columns_past_its_capacity():
    cache = PanelCache(capacity=2)
    for number, (pixel, hot_cell) in enumerate(CLICKS[:3]):
        paper_figure(gradient_image(), [one_hot_query(number, pixel, hot_cell)], (16, 16), cache=cache)
    assert len(cache) == 2


def test_a_title_inset_keeps_the_caption_clear_of_the_top_right_corner():
    from sagan_viz.figure_text import text_width
    from sagan_viz.paper_figure import figure_layout

    query = one_hot_query(0, *CLICKS[0])
    layout = figure_layout((32, 32), 1, 6)
    room = layout.size[0] - 2 * layout.gap
    first = "G.attn0"
    while text_width(first + " x", layout.font_size + 1) < room - 20:  # a first part that ends ~20 px short
        first += " x"
    for inset in (0, 60):
        figure = np.asarray(paper_figure(gradient_image(), [query], (16, 16), scale=6, caption=f"{first} · seed 7",
                                         title_inset=inset))
        inked = np.flatnonzero((figure[: layout.gap + layout.line_height] < 128).any(axis=(0, 2)))
        if inset:
            assert inked.max() < figure.shape[1] - layout.gap - inset  # wrapped before the reserved corner
        else:
            assert inked.max() >= figure.shape[1] - layout.gap - 60  # the same caption runs into it otherwise

"""The studio's callbacks, driven directly (the browser test drives the same through Chromium)."""
from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from figure_helpers import clickable_parts
from PIL import Image

from sagan_viz.app import build_app
from sagan_viz.app.catalog import ModelCache, StatisticsCache, discover_checkpoints, newest_checkpoint
from sagan_viz.app.clickable_image import Marker, clickable_html, query_markers
from sagan_viz.app.compare_tab import CompareOutputs, CompareTab
from sagan_viz.app.dynamics_tab import DynamicsTab
from sagan_viz.app.inspect_tab import InspectTab
from sagan_viz.app.state import CompareState, InspectState, add_query, newest_slot, remove_newest_query
from sagan_viz.devices import resolve_device
from sagan_viz.queries import QUERY_COLOURS


def pixels(path: str) -> np.ndarray:
    """The RGB array of a PNG the studio handed Gradio."""
    return np.asarray(Image.open(path).convert("RGB"))


def click(x: float, y: float) -> gr.SelectData:
    """What Gradio passes for a click at (x, y) on a clickable image: generated-image pixels, fractions included."""
    return gr.SelectData(target=None, data={"index": [x, y], "value": None})


@pytest.fixture
def studio(tiny_checkpoint_dir):
    entries = discover_checkpoints(tiny_checkpoint_dir)
    cache = ModelCache(resolve_device("cpu"))
    return entries, newest_checkpoint(entries), cache


def test_build_app_lists_every_tiny_checkpoint_and_defaults_to_the_newest_with_attention(studio, tiny_checkpoint_dir):
    entries, default, _ = studio
    assert {e.run for e in entries} == {"tiny-sagan", "tiny-noattn"}
    assert default.run == "tiny-sagan" and default.step == 2
    assert isinstance(build_app(tiny_checkpoint_dir, device="cpu"), gr.Blocks)


def test_the_built_studio_polls_its_idle_queue_every_10_ms_not_every_millisecond(tiny_checkpoint_dir):
    from sagan_viz.app import QUEUE_IDLE_POLL_SECONDS

    demo = build_app(tiny_checkpoint_dir, device="cpu")
    assert demo._queue.sleep_when_free == QUEUE_IDLE_POLL_SECONDS  # the attribute Gradio's queue loop sleeps on


def test_generate_then_clicks_answer_from_stored_beta_without_running_networks(studio, monkeypatch):
    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    display, figure, details, grid, download, recipe, state, layer_update, status = tab.generate(
        str(default.path), 7, "", 0.4, "ema", None, InspectState(show_grid=True)
    )
    picture, markers = clickable_parts(display)
    assert np.array_equal(pixels(picture), state.generation.image)  # the picture itself; the browser upscales it
    assert markers == []
    assert "CPU" in status and "EMA-G" in status and "eval mode" in status
    layer = layer_update["value"]
    assert layer == "G.attn0"
    model = cache.get(default.path)

    def forbidden(*args, **kwargs):
        raise AssertionError("a click ran a network")

    monkeypatch.setattr(model.generator, "forward", forbidden)
    monkeypatch.setattr(model.discriminator, "forward", forbidden)
    first = tab.click(state, layer, click(2.5, 2.5))
    second = tab.click(first.state, layer, click(29.4, 18.75))
    assert first.state.queries == [(2.5, 2.5)]
    assert second.state.queries == [(2.5, 2.5), (29.4, 18.75)]
    assert clickable_parts(second.image) == (picture, [(2.5, 2.5), (29.4, 18.75)])  # same file, a marker per query
    assert not np.array_equal(pixels(first.grid), pixels(second.grid))  # the raw grid of the newest query changed
    assert pixels(second.figure).shape[1] > pixels(first.figure).shape[1]  # one more panel in the figure
    assert "<td>2</td>" in second.details
    assert state.queries == []  # callbacks return new state; the old one (another tab's) is untouched
    assert second.download == second.figure  # the download button offers the very file the figure shows


def test_clicks_outside_the_image_and_before_generation_are_clear_errors(studio):
    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    with pytest.raises(gr.Error, match="generate an image first"):
        tab.click(InspectState(), "G.attn0", click(1, 1))
    *_, state, _, _ = tab.generate(str(default.path), 1, "", 0.4, "ema", None, InspectState())
    with pytest.raises(gr.Error, match="outside the 32x32 image"):
        tab.click(state, "G.attn0", click(32, 3))
    with pytest.raises(gr.Error, match="two numbers"):
        tab.click(state, "G.attn0", gr.SelectData(target=None, data={"index": "<script>", "value": None}))


def test_a_bad_upload_is_a_message_and_the_app_keeps_working(studio, tmp_path):
    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    bogus = tmp_path / "notes.safetensors"
    bogus.write_text("definitely not a checkpoint")
    with pytest.raises(gr.Error, match="notes.safetensors"):
        tab.upload(str(bogus))
    outputs = tab.generate(str(default.path), 3, "", 0.4, "ema", None, InspectState())
    assert pixels(clickable_parts(outputs[0])[0]).shape == (32, 32, 3)


def test_a_good_upload_joins_the_list_and_is_selected(studio, tiny_checkpoint):
    entries, default, cache = studio
    dropdown, *_, message = InspectTab(cache, entries, default).upload(str(tiny_checkpoint))
    assert dropdown["value"] == str(tiny_checkpoint)
    assert "Loaded" in message


def test_raw_and_ema_weights_both_generate_and_say_which(studio):
    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    *_, raw_status = tab.generate(str(default.path), 5, "", 0.4, "raw", None, InspectState())
    assert "raw G" in raw_status


def test_compare_updates_every_panel_and_a_checkpoint_without_attention_says_so(studio):
    entries, default, cache = studio
    tab = CompareTab(cache, entries, default)
    paths = [str(e.path) for e in entries if e.step == 2]
    outputs = tab.generate(paths, "7", "", 0.4, "ema", "G.attn0", CompareState())
    picture, markers = clickable_parts(outputs.reference)
    assert np.array_equal(pixels(picture), outputs.state.generations[0].image) and markers == []
    panels_before = [o["value"] for o in outputs.panels[:2]]
    clicked = tab.click(outputs.state, "G.attn0", click(6.25, 12.5))
    assert clicked.state.queries == [(6.25, 12.5)]
    assert clickable_parts(clicked.reference) == (picture, [(6.25, 12.5)])  # same picture, the click marked
    panels_after = [o["value"] for o in clicked.panels[:2]]
    labels = [o["label"] for o in clicked.panels[:2]]
    assert any("no attention" in label for label in labels)
    with_attention = labels.index(next(label for label in labels if "no attention" not in label))
    assert not np.array_equal(pixels(panels_before[with_attention]), pixels(panels_after[with_attention]))
    without = 1 - with_attention  # its figure stays the image alone: a click changes nothing there
    assert np.array_equal(pixels(panels_before[without]), pixels(panels_after[without]))
    assert clicked.panels[2]["visible"] is False and clicked.recipes[2]["visible"] is False  # unused slots stay hidden
    assert tab.rerender(CompareState(), "G.attn0") == CompareOutputs.unchanged()  # nothing compared yet


def test_dynamics_charts_gamma_of_every_layer_from_the_history(studio):
    entries, default, cache = studio
    gamma_chart, loss_chart, _ = DynamicsTab(StatisticsCache(cache), entries, default).show(str(default.path))
    names = {trace.name for trace in gamma_chart.data}
    assert {"G.attn0", "D.attn0"} <= names


def test_attention_statistics_cover_every_snapshot_and_are_cached(studio, monkeypatch):
    entries, default, cache = studio
    statistics = StatisticsCache(cache, seeds=(0, 1))
    tab = DynamicsTab(statistics, entries, default)
    chart = tab.show_statistics(str(default.path), progress=None)
    steps = {x for trace in chart.data for x in trace.x}
    assert steps == {0, 1, 2}
    monkeypatch.setattr(cache, "get", lambda path: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert tab.show_statistics(str(default.path), progress=None).data == chart.data  # from the cache


def test_clickable_html_marks_each_point_in_its_colour_over_the_served_picture():
    image = np.zeros((16, 32, 3), np.uint8)  # wider than tall: x and y cannot be swapped unseen
    points = [(0.5, 15.25), (31.75, 2.0)]
    html = clickable_html("/tmp/some folder/image.png", image, [*query_markers(points), Marker((8, 4), (1, 2, 3))])
    assert clickable_parts(html) == ("/tmp/some folder/image.png", [*points, (8.0, 4.0)])
    fills = re.findall(r'fill="rgb\((\d+), (\d+), (\d+)\)"', html)
    assert [tuple(map(int, fill)) for fill in fills] == [QUERY_COLOURS[0], QUERY_COLOURS[1], (1, 2, 3)]  # click order
    assert 'viewBox="0 0 32 16"' in html and 'width="32" height="16"' in html  # markers in image pixels


def test_past_five_queries_a_click_takes_the_oldest_one_s_slot_and_the_others_keep_theirs():
    state = InspectState()
    for index in range(7):
        state = add_query(state, (index, index))
    assert state.queries == [(5, 5), (6, 6), (2, 2), (3, 3), (4, 4)]  # 5 and 6 took the slots of 0 and 1
    assert state.recency == (2, 3, 4, 0, 1) and newest_slot(state) == 1
    removed = remove_newest_query(state)  # (6, 6) goes; the queries after its slot move up one
    assert removed.queries == [(5, 5), (2, 2), (3, 3), (4, 4)] and newest_slot(removed) == 0
    again = add_query(removed, (9, 9))  # a free slot again: appended
    assert again.queries == [(5, 5), (2, 2), (3, 3), (4, 4), (9, 9)] and again.recency == (1, 2, 3, 0, 4)
    assert add_query(again, (8, 8)).queries[1] == (8, 8)  # then the oldest, (2, 2), makes room
    assert remove_newest_query(InspectState()) == InspectState()


def test_a_sixth_click_redraws_one_panel_and_leaves_the_other_queries_as_they_were(studio, monkeypatch):
    import sagan_viz.paper_figure as paper_figure_module
    from sagan_viz.app.views import figure_scale
    from sagan_viz.paper_figure import figure_layout

    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    state = tab.generate(str(default.path), 3, "", 0.4, "ema", None, InspectState(show_grid=True))[6]
    for x, y in ((2.5, 2.5), (12.5, 6.5), (22.5, 10.5), (6.5, 20.5), (28.5, 28.5)):
        five = tab.click(state, "G.attn0", click(x, y))
        state = five.state
    drawn = []
    real_column = paper_figure_module.query_column
    monkeypatch.setattr(paper_figure_module, "query_column", lambda *a: drawn.append(a[1].pixel) or real_column(*a))
    six = tab.click(state, "G.attn0", click(16.5, 24.5))
    assert drawn == [(16.5, 24.5)]  # one new panel; the other four came from the cache
    assert six.state.queries[0] == (16.5, 24.5) and six.state.queries[1:] == five.state.queries[1:]
    assert clickable_parts(six.image)[1] == [(16.5, 24.5), *clickable_parts(five.image)[1][1:]]  # a marker per slot
    before, after = pixels(five.figure), pixels(six.figure)
    assert before.shape == after.shape  # still five panels
    changed_columns = np.flatnonzero((before != after).any(axis=(0, 2)))
    layout = figure_layout((32, 32), 5, figure_scale(32))
    assert changed_columns.max() < layout.panel_origin(2)[0]  # only the image's markers and panel 1 changed
    assert np.array_equal(pixels(six.grid), pixels(tab.show_grid(six.state, "G.attn0", True).grid["value"]))
    newest_alone = tab.clear(six.state, "G.attn0").state
    newest_alone = tab.click(newest_alone, "G.attn0", click(16.5, 24.5)).state
    assert np.array_equal(pixels(six.grid), pixels(tab.render(newest_alone, "G.attn0").grid))  # grid of the newest


def test_png_files_keep_only_the_newest_and_read_back_exactly(tmp_path):
    from sagan_viz.app.png_files import PngFiles

    files = PngFiles(tmp_path, keep=3)
    images = [np.full((6, 9, 3), value, np.uint8) for value in range(5)]
    paths = [files.write(image) for image in images]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in paths[-3:])
    assert np.array_equal(pixels(paths[-1]), images[-1])



def test_a_figure_record_goes_with_its_png_when_the_png_is_dropped(tmp_path):
    from sagan_viz.app.png_files import PngFiles

    files = PngFiles(tmp_path, keep=2)
    first = files.write(np.zeros((4, 4, 3), np.uint8))
    Path(first).with_suffix(".json").write_text("{}")  # its recipe, as the tabs write it
    files.write(np.ones((4, 4, 3), np.uint8))
    assert Path(first).with_suffix(".json").exists()  # still kept
    files.write(np.ones((4, 4, 3), np.uint8))
    assert not Path(first).exists() and not Path(first).with_suffix(".json").exists()


def test_the_model_cache_digests_a_file_once_per_version(tmp_path, monkeypatch):
    import sagan_viz.app.catalog as catalog

    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"first weights")
    computed = []
    monkeypatch.setattr(catalog, "checkpoint_digest", lambda path: computed.append(path) or Path(path).read_bytes())
    cache = ModelCache(resolve_device("cpu"))
    assert cache.digest(checkpoint) == cache.digest(str(checkpoint)) == b"first weights" and len(computed) == 1
    checkpoint.write_bytes(b"other weights, longer")  # a new version of the file: its size and time change
    assert cache.digest(checkpoint) == b"other weights, longer" and len(computed) == 2


def test_remove_last_drops_the_newest_query_and_clear_drops_them_all(studio):
    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    *_, state, _, _ = tab.generate(str(default.path), 2, "", 0.4, "ema", None, InspectState(show_grid=True))
    for x, y in ((2.5, 2.5), (18.75, 6.25), (28.1, 28.1)):
        *_, state = tab.click(state, "G.attn0", click(x, y))
    oldest_two = state.queries[:2]
    removed = tab.remove_last(state, "G.attn0")
    assert removed.state.queries == oldest_two and removed.details.count("<tr>") == 3  # header + two query rows
    cleared = tab.clear(removed.state, "G.attn0")
    assert cleared.state.queries == [] and cleared.grid is None and "click the image to add a query" in cleared.details
    untouched = tab.remove_last(InspectState(), "G.attn0")  # nothing generated yet: every output stays as it is
    assert all(output == {"__type__": "update"} for output in untouched)


def test_a_model_folder_overwritten_in_place_gets_a_new_digest(tmp_path):
    import hashlib

    folder = tmp_path / "biggan-deep-128"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"first")
    cache = ModelCache(resolve_device("cpu"))

    def expected(weights: bytes) -> str:  # names and bytes of config then weights, as the record's docs say
        return hashlib.sha256(b"config.json\0{}pytorch_model.bin\0" + weights).hexdigest()

    assert cache.digest(folder) == expected(b"first")
    (folder / "pytorch_model.bin").write_bytes(b"second, longer")  # the folder's own time stays as it was
    assert cache.digest(folder) == expected(b"second, longer")


def test_the_raw_grid_is_drawn_only_when_asked_for_and_the_toggle_redraws_nothing_else(studio):
    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    *_, state, _, _ = tab.generate(str(default.path), 4, "", 0.4, "ema", None, InspectState())
    clicked = tab.click(state, "G.attn0", click(20.5, 9.5))
    assert clicked.grid is None  # off by default: not drawn
    shown = tab.show_grid(clicked.state, "G.attn0", True)
    assert shown.grid["visible"] is True and shown.state.show_grid
    key_cells = clicked.state.generation.layer("G.attn0").key_shape
    grid = pixels(shown.grid["value"])
    cell = max(4, 256 // key_cells[1])
    assert grid.shape[:2] == (key_cells[0] * cell + 1, key_cells[1] * cell + 1)  # one block per key, lines between
    assert all(output == {"__type__": "update"} for output in (shown.image, shown.figure, shown.details, shown.recipe))
    hidden = tab.show_grid(shown.state, "G.attn0", False)
    assert hidden.grid == {"__type__": "update", "value": None, "visible": False} and not hidden.state.show_grid


def test_two_sessions_clicking_at_once_draw_one_at_a_time_and_each_gets_its_own_figure(studio, monkeypatch):
    import threading
    import time

    import sagan_viz.app.inspect_tab as inspect_tab

    entries, default, cache = studio
    tab = InspectTab(cache, entries, default)
    states = [tab.generate(str(default.path), seed, "", 0.4, "ema", None, InspectState())[6] for seed in (1, 2)]
    drawing, overlaps = [0], []
    real_view = inspect_tab.inspect_view

    def watched_view(*args, **kwargs):  # counts the figures being drawn at this moment
        drawing[0] += 1
        overlaps.append(drawing[0])
        time.sleep(0.05)  # long enough for the other session's click to arrive meanwhile
        try:
            return real_view(*args, **kwargs)
        finally:
            drawing[0] -= 1

    monkeypatch.setattr(inspect_tab, "inspect_view", watched_view)
    answers = [None, None]

    def session(number: int, x: float) -> None:
        answers[number] = tab.click(states[number], "G.attn0", click(x, 3.0))

    threads = [threading.Thread(target=session, args=(number, x)) for number, x in ((0, 4.0), (1, 27.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1, 1]  # the second drawing began only after the first ended
    assert [answer.state.queries for answer in answers] == [[(4.0, 3.0)], [(27.0, 3.0)]]
    assert answers[0].figure != answers[1].figure
    assert not np.array_equal(pixels(answers[0].figure), pixels(answers[1].figure))

"""Every exported figure comes with a record that draws the same PNG again, byte for byte, from the same weights."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from sagan_viz.app.attribution_tab import AttributionState, AttributionTab
from sagan_viz.app.catalog import ModelCache, discover_checkpoints, newest_checkpoint
from sagan_viz.app.compare_tab import CompareTab
from sagan_viz.app.state import CompareState
from sagan_viz.figure import main
from sagan_viz.figure_record import FigureRecord, FigureRecordError, checkpoint_digest, read_record


class Click:
    """What a clickable image's select event hands a callback: the clicked (x, y) in generated-image pixels."""

    def __init__(self, x: float, y: float) -> None:
        self.index = (x, y)


def error_of(arguments, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(arguments)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_a_recorded_figure_is_drawn_again_byte_for_byte(tiny_checkpoint, tmp_path):
    first = tmp_path / "figure.png"
    main(["--checkpoint", str(tiny_checkpoint), "--seed", "4", "--query", "3,7", "--query", "20,28",
          "--layer", "D.attn0", "--scale", "5", "--peaks", "2", "--weights", "raw", "--device", "cpu",
          "--out", str(first)])
    record = json.loads((tmp_path / "figure.json").read_text())
    assert record["checkpoint_sha256"] == checkpoint_digest(tiny_checkpoint)
    assert (record["seed"], record["layer"], record["queries"], record["scale"], record["weights"]) == \
        (4, "D.attn0", [[3.0, 7.0], [20.0, 28.0]], 5, "raw")
    again = tmp_path / "again.png"
    main(["--from", str(tmp_path / "figure.json"), "--device", "cpu", "--out", str(again)])
    assert again.read_bytes() == first.read_bytes()


def test_a_biggan_figure_with_class_and_truncation_is_drawn_again(tiny_biggan_deep, tmp_path):
    first = tmp_path / "dog.png"
    main(["--checkpoint", str(tiny_biggan_deep), "--class", "golden retriever", "--truncation", "0.3",
          "--seed", "9", "--query", "16,16", "--device", "cpu", "--out", str(first)])
    record = json.loads((tmp_path / "dog.json").read_text())
    assert (record["family"], record["label"], record["truncation"]) == ("biggan-deep", 207, 0.3)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_biggan_deep, moved)
    again = tmp_path / "again.png"
    main(["--from", str(tmp_path / "dog.json"), "--checkpoint", str(moved), "--device", "cpu", "--out", str(again)])
    assert again.read_bytes() == first.read_bytes()


def test_other_weights_or_a_damaged_record_are_refused(tiny_checkpoint, tmp_path, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--query", "3,3", "--device", "cpu", "--out", str(tmp_path / "f.png")])
    changed = tmp_path / "changed.safetensors"
    data = bytearray(tiny_checkpoint.read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    changed.write_bytes(bytes(data))
    message = error_of(["--from", str(tmp_path / "f.json"), "--checkpoint", str(changed), "--out",
                        str(tmp_path / "g.png")], capsys)
    assert "changed.safetensors" in message and "not the same weights" in message
    assert not (tmp_path / "g.png").exists()
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert "not a sagan-viz figure record" in error_of(["--from", str(tmp_path / "bad.json"), "--out",
                                                       str(tmp_path / "h.png")], capsys)
    assert "give --checkpoint" in error_of(["--out", str(tmp_path / "i.png")], capsys)


def test_a_record_names_either_a_seed_or_a_z():
    record = FigureRecord(checkpoint="c", checkpoint_sha256="0" * 64, family="f", layer="G.attn0", queries=((1, 2),),
                          seed=None, z=(0.5, -1.0))
    assert FigureRecord.from_json(record.to_json(), "r").z == (0.5, -1.0)
    both = json.loads(record.to_json()) | {"seed": 3}
    with pytest.raises(ValueError, match="either a seed or a z"):
        FigureRecord.from_json(json.dumps(both), "r.json")


def studio_tab(tab_class, tiny_checkpoint_dir):
    """A tab of the studio over the tiny runs, on the CPU, as build_app makes it."""
    entries = discover_checkpoints(tiny_checkpoint_dir)
    return tab_class(ModelCache(torch.device("cpu")), entries, newest_checkpoint(entries))


def redraw(recipe, checkpoint, out) -> bytes:
    """python -m sagan_viz.figure --from recipe, in process; the bytes of the PNG it wrote."""
    main(["--from", str(recipe), "--checkpoint", str(checkpoint), "--device", "cpu", "--out", str(out)])
    return out.read_bytes()


def test_every_compare_panel_is_drawn_again_byte_for_byte_from_its_recipe(tiny_checkpoint_dir, tmp_path):
    tab = studio_tab(CompareTab, tiny_checkpoint_dir)
    newest = {entry.run: entry for entry in tab.entries if entry.step == 2}
    checkpoints = [str(newest["tiny-sagan"].path), str(newest["tiny-noattn"].path)]
    state = tab.generate(checkpoints, "5", "", 0.4, "raw", "D.attn0", CompareState()).state
    for x, y in ((6.25, 3.75), (26.25, 24.375)):
        state = tab.click(state, "D.attn0", Click(x, y)).state
    shown = tab.rerender(state, "D.attn0")
    for number, checkpoint in enumerate(checkpoints):
        panel, recipe = shown.panels[number]["value"], shown.recipes[number]["value"]
        record = json.loads(Path(recipe).read_text())
        assert (record["kind"], record["title"], record["weights"], record["scale"]) == \
            ("compare-panel", shown.panels[number]["label"], "raw", 6)
        assert record["queries"] == [list(pixel) for pixel in state.queries]  # same size: the reference's pixels
        assert redraw(recipe, checkpoint, tmp_path / f"panel-{number}.png") == Path(panel).read_bytes()
    assert shown.recipes[2]["visible"] is False  # no third panel, no third recipe


def test_attribution_figures_are_drawn_again_byte_for_byte_from_their_recipes(tiny_checkpoint_dir, tmp_path):
    tab = studio_tab(AttributionTab, tiny_checkpoint_dir)
    state = tab.generate(str(tab.default.path), 3, "", 0.4, "ema", None, AttributionState()).state
    clicked = tab.click(state, "G.attn0", "gradient_x_activation", True, Click(18.75, 8.75))
    record = json.loads(Path(clicked.recipe).read_text())
    assert (record["kind"], record["method"], record["gamma_zero"]) == ("attribution", "gradient_x_activation", True)
    assert redraw(clicked.recipe, tab.default.path, tmp_path / "again.png") == Path(clicked.figure).read_bytes()
    shown = tab.show_discriminator(clicked.state, "integrated_gradients")
    assert json.loads(Path(shown.discriminator_recipe).read_text())["method"] == "integrated_gradients"
    assert redraw(shown.discriminator_recipe, tab.default.path, tmp_path / "d.png") == \
        Path(shown.discriminator).read_bytes()


@pytest.mark.parametrize("kind", ["compare-panel", "attribution"])
def test_a_recipe_with_another_digest_is_refused_naming_the_checkpoint(tiny_checkpoint_dir, tmp_path, capsys, kind):
    if kind == "compare-panel":
        tab = studio_tab(CompareTab, tiny_checkpoint_dir)
        shown = tab.generate([str(tab.default.path)], "1", "", 0.4, "ema", "G.attn0", CompareState())
        recipe = Path(shown.recipes[0]["value"])
    else:
        tab = studio_tab(AttributionTab, tiny_checkpoint_dir)
        state = tab.generate(str(tab.default.path), 1, "", 0.4, "ema", None, AttributionState()).state
        recipe = Path(tab.click(state, "G.attn0", "integrated_gradients", False, Click(0.625, 0.625)).recipe)
    tampered = json.loads(recipe.read_text()) | {"checkpoint_sha256": "0" * 64}
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    message = error_of(["--from", str(tmp_path / "tampered.json"), "--checkpoint", str(tab.default.path),
                        "--out", str(tmp_path / "x.png")], capsys)
    assert f"{tab.default.path}: its SHA-256 is" in message and "not the same weights" in message
    assert not (tmp_path / "x.png").exists()


def test_a_version_1_record_still_draws_its_figure(tiny_checkpoint, tmp_path):
    main(["--checkpoint", str(tiny_checkpoint), "--seed", "2", "--query", "9,4", "--query", "30,30", "--scale", "3",
          "--device", "cpu", "--out", str(tmp_path / "new.png")])
    written_before_kinds = VERSION_1_RECORD.replace("DIGEST", checkpoint_digest(tiny_checkpoint))
    (tmp_path / "old.json").write_text(written_before_kinds)
    assert read_record(tmp_path / "old.json").kind == "inspect"
    again = redraw(tmp_path / "old.json", tiny_checkpoint, tmp_path / "again.png")
    assert again == (tmp_path / "new.png").read_bytes()


# What python -m sagan_viz.figure wrote before records had a kind (version 1), for the command above.
VERSION_1_RECORD = """{
  "format": "sagan-viz-figure",
  "version": 1,
  "checkpoint": "step_0000002.safetensors",
  "checkpoint_sha256": "DIGEST",
  "family": "sagan-viz",
  "layer": "G.attn0",
  "queries": [[9.0, 4.0], [30.0, 30.0]],
  "weights": "ema",
  "seed": 2,
  "z": null,
  "label": null,
  "truncation": null,
  "scale": 3,
  "peaks": 3
}
"""


@pytest.mark.parametrize("change, message", [
    ({"kind": "histogram"}, "unknown kind of figure 'histogram'"),
    ({"kind": "compare-panel"}, "a compare-panel figure names its title"),
    ({"kind": "attribution", "method": "integrated_gradients"}, "an attribution figure has one query, this record has 2"),
    ({"kind": "discriminator-view", "layer": ""}, "a discriminator-view figure names its method"),
    ({"version": 3}, "figure record version 3, this reads versions 1, 2"),
])
def test_a_record_missing_what_its_kind_needs_is_refused(change, message):
    record = FigureRecord(checkpoint="c", checkpoint_sha256="0" * 64, family="f", layer="G.attn0",
                          queries=((1, 2), (3, 4)), seed=1)
    with pytest.raises(FigureRecordError, match=re.escape(f"r.json: {message}")):
        FigureRecord.from_json(json.dumps(json.loads(record.to_json()) | change), "r.json")


def test_a_method_the_model_lacks_is_refused_naming_the_record(tiny_checkpoint, tmp_path, capsys):
    record = FigureRecord(checkpoint=tiny_checkpoint.name, checkpoint_sha256=checkpoint_digest(tiny_checkpoint),
                          family="sagan-viz", layer="G.attn0", queries=((4, 4),), seed=1, kind="attribution",
                          method="occlusion")
    (tmp_path / "r.json").write_text(record.to_json())
    message = error_of(["--from", str(tmp_path / "r.json"), "--checkpoint", str(tiny_checkpoint),
                        "--out", str(tmp_path / "x.png")], capsys)
    assert f"{tmp_path / 'r.json'}: method must be one of" in message

"""The Inspect tab's views no other tool has: the column of beta, the attention effect, and figure recipes."""
from __future__ import annotations

from pathlib import Path

import torch

from sagan_viz.app.catalog import ModelCache, discover_checkpoints
from sagan_viz.app.inspect_tab import InspectTab
from sagan_viz.app.state import InspectState
from sagan_viz.figure import main as figure_main


class Click:
    def __init__(self, x: int, y: int) -> None:
        self.index = (x, y)


def inspect_tab(tiny_checkpoint_dir) -> InspectTab:
    entries = discover_checkpoints(tiny_checkpoint_dir)
    default = max((e for e in entries if e.has_attention), key=lambda e: e.step)
    return InspectTab(ModelCache(torch.device("cpu")), entries, default)


def test_the_downloaded_figure_is_redrawn_byte_for_byte_from_its_recipe(tiny_checkpoint_dir, tmp_path):
    tab = inspect_tab(tiny_checkpoint_dir)
    *_, state, _, _ = tab.generate(str(tab.default.path), 6, "", 0.4, "ema", None, InspectState())
    *_, state = tab.click(state, "G.attn0", Click(6.25, 7.5))
    display, figure, details, grid, download, recipe, state = tab.click(state, "G.attn0", Click(25, 18.75))
    assert Path(recipe).suffix == ".json" and Path(recipe).stem == Path(figure).stem  # beside the PNG
    again = tmp_path / "again.png"
    figure_main(["--from", recipe, "--checkpoint", str(tab.default.path), "--device", "cpu", "--out", str(again)])
    assert again.read_bytes() == Path(figure).read_bytes()


def test_column_and_effect_modes_answer_clicks_from_the_same_generation(tiny_checkpoint_dir):
    tab = inspect_tab(tiny_checkpoint_dir)
    *_, state, _, _ = tab.generate(str(tab.default.path), 3, "", 0.4, "ema", None, InspectState())
    *_, state = tab.click(state, "G.attn0", Click(12.5, 12.5))
    display, figure, details, grid, download, recipe, state = tab.change_mode(state, "G.attn0", "column")
    assert state.mode == "column" and "reverse view" in details and "<td>1</td>" in details
    assert recipe is None  # a recipe redraws the paper figure (row view) only
    *_, details, _, _, _, state = tab.change_mode(state, "G.attn0", "effect")
    assert "where attention acts" in details
    *_, details, _, _, _, state = tab.change_mode(state, "G.attn0", "row")
    assert "mass in arrowed peaks" in details and len(state.queries) == 1

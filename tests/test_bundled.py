"""The checkpoints shipped in checkpoints/: each loads and generates, and they fit the size budget.

The studio's own tests never use these; this file checks what a fresh clone's `python launch.py` opens.
"""
import re
from pathlib import Path

import numpy as np
import pytest

import sagan_viz
from sagan_viz.app.catalog import discover_checkpoints, newest_checkpoint
from sagan_viz.app.lecture_guide import LECTURE_GUIDE

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = sorted(p for p in CHECKPOINTS.rglob("step_*.safetensors"))


def test_checkpoints_folder_ships_two_sagan_series_and_a_baseline_within_80_mb():
    runs = {path.parent.name for path in SHIPPED}
    assert {"faces32-sagan", "faces32-noattn", "twemoji32-sagan"} <= runs
    for series in ("faces32-sagan", "twemoji32-sagan"):
        steps = sorted(int(p.stem.removeprefix("step_")) for p in SHIPPED if p.parent.name == series)
        assert len(steps) >= 8 and steps[0] == 0, series  # at least 8 snapshots, from step 0
    package_data = CHECKPOINTS.parent / "sagan_viz" / "data"
    total = sum(path.stat().st_size for folder in (CHECKPOINTS, package_data) for path in folder.rglob("*")
                if path.is_file())
    assert total < 80 * 1024 * 1024
    assert not list(CHECKPOINTS.rglob("*.resume.pt"))  # shipped snapshots drop optimizer state


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_checkpoint_loads_and_generates(path):
    model = sagan_viz.load_checkpoint(path, device="cpu")
    result = model.generate(seed=7)
    assert result.image.shape == (model.config.resolution, model.config.resolution, 3)
    assert result.image.dtype == np.uint8 and result.image.std() > 1  # not a blank image
    for name, beta in result.attention.items():
        assert np.allclose(beta.sum(dim=1).numpy(), 1.0, atol=1e-4), name


def test_the_checkpoints_readme_lists_exactly_the_shipped_snapshots():
    readme = (CHECKPOINTS / "README.md").read_text()
    # "9 snapshots: 0, 750, 1,750, ...": steps are separated by ", ", thousands by a bare ","
    listed = [tuple(int(step.replace(",", "")) for step in steps.split(", "))
              for steps in re.findall(r"\d+ snapshots: ((?:[\d,]+, )*[\d,]+)", readme)]
    for series in sorted({path.parent.name for path in SHIPPED}):
        steps = tuple(sorted(int(path.stem.removeprefix("step_")) for path in SHIPPED if path.parent.name == series))
        if len(steps) == 1:
            assert f"`{series}` | final snapshot | {steps[0]:,} |" in readme, series
        else:
            assert steps in listed, f"{series}: {steps} shipped, the README lists {listed}"


def test_the_lecture_guide_describes_the_model_the_studio_opens_on():
    default = newest_checkpoint(discover_checkpoints(CHECKPOINTS))
    model = sagan_viz.load_checkpoint(default.path, device="cpu")
    numbered = [line for line in LECTURE_GUIDE.splitlines() if re.match(r"\d+\. ", line)]
    assert [int(line.split(".")[0]) for line in numbered] == list(range(1, len(numbered) + 1))
    assert len(numbered) >= 8
    assert f"**{default.path.parent.name}**" in LECTURE_GUIDE
    side = re.search(r"(\d+)×\1 cartoon faces", LECTURE_GUIDE)
    assert int(side[1]) == model.config.resolution
    assert set(re.findall(r"\b[GD]\.attn\d+\b", LECTURE_GUIDE)) == set(model.attention_layer_names())
    grid, channels, reduced = map(int, re.search(
        r"(\d+)×\1 feature map \(C = (\d+) channels, C̄ = C/8 = (\d+)\)", LECTURE_GUIDE).groups())
    scores = int(re.search(r"turns (\d+) scores", LECTURE_GUIDE)[1])
    assert f"uniform 1/{scores}" in LECTURE_GUIDE
    for layer in model.attention_layers():
        module = model.attention_module(layer.name)
        assert layer.query_shape == (grid, grid) and module.channels == channels, layer.name
        assert module.g.out_channels == reduced and layer.key_shape[0] * layer.key_shape[1] == scores, layer.name


def test_launch_opens_the_final_sagan_snapshot_by_default():
    default = newest_checkpoint(discover_checkpoints(CHECKPOINTS))
    final = max((p for p in SHIPPED if p.parent.name == "faces32-sagan"), key=lambda p: p.stem)
    assert default.path == final

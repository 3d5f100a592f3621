"""The checkpoints shipped in checkpoints/: each loads and generates, and they fit the size budget.

The studio's own tests never use these; this file checks what a fresh clone's `python launch.py` opens.
"""
from pathlib import Path

import numpy as np
import pytest

import sagan_viz
from sagan_viz.app.catalog import discover_checkpoints, newest_checkpoint

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
    readme = (CHECKPOINTS / "README.md").read_text()
    step = int(path.stem.removeprefix("step_"))
    assert path.parent.name in readme and (f"{step:,}" in readme or str(step) in readme), "README must describe it"


def test_launch_opens_the_final_sagan_snapshot_by_default():
    default = newest_checkpoint(discover_checkpoints(CHECKPOINTS))
    final = max((p for p in SHIPPED if p.parent.name == "faces32-sagan"), key=lambda p: p.stem)
    assert default.path == final

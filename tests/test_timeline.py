"""One image's attention through every snapshot of a run: the strip and the animated GIF."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from figure_helpers import clickable_parts
from PIL import Image, ImageSequence

from sagan_viz import load_checkpoint
from sagan_viz.latents import normal_latent
from sagan_viz.timeline import timeline, timeline_frames, timeline_strip, write_gif


def test_every_snapshot_sees_the_same_z_and_queries(tiny_checkpoint_dir, tmp_path):
    paths = sorted((tiny_checkpoint_dir / "tiny-sagan").glob("step_*.safetensors"))
    models = [load_checkpoint(path, device="cpu") for path in paths]
    z = normal_latent(11, models[0].z_dim)
    snapshots = timeline(models, z, None, "G.attn0", [(8.0, 8.0), (24.0, 30.0)], (32, 32))
    assert [snapshot.step for snapshot in snapshots] == [model.step for model in models]
    for model, snapshot in zip(models, snapshots):
        assert torch.equal(snapshot.generation.z, z)
        direct = model.generate(z=z).layer("G.attn0")
        row = direct.attention_row(4 * 16 + 4).reshape(16, 16).numpy()  # pixel (8, 8) -> cell (4, 4)
        assert np.abs(snapshot.views[0].attention_map - row).max() < 1e-6
    strip = timeline_strip(snapshots, "G.attn0")
    assert strip.width >= len(models) * 32 * 3 and strip.height >= 3 * 32 * 3  # image + two maps per column
    frames = timeline_frames(snapshots, "G.attn0")
    gif = write_gif(frames, tmp_path / "timeline.gif")
    with Image.open(gif) as animation:
        assert animation.n_frames == len(models)
        sizes = {frame.size for frame in ImageSequence.Iterator(animation)}
        assert sizes == {frames[0].size}


def test_a_snapshot_without_the_layer_shows_its_image_alone(tiny_checkpoint_dir):
    with_attention = load_checkpoint(sorted((tiny_checkpoint_dir / "tiny-sagan").glob("*.safetensors"))[-1], "cpu")
    without = load_checkpoint(sorted((tiny_checkpoint_dir / "tiny-noattn").glob("*.safetensors"))[-1], "cpu")
    z = normal_latent(2, with_attention.z_dim)
    snapshots = timeline([with_attention, without], z, None, "G.attn0", [(5.0, 5.0)], (32, 32))
    assert len(snapshots[0].views) == 1 and snapshots[1].views == []
    assert len(timeline_frames(snapshots, "G.attn0")) == 2


class Click:
    """What Gradio passes for a click at (x, y) in generated-image pixels."""

    def __init__(self, x: float, y: float) -> None:
        self.index = (x, y)


def test_the_dynamics_timeline_panel_shows_every_snapshot_and_exports_a_gif(tiny_checkpoint_dir, tiny_checkpoint):
    from sagan_viz.app.catalog import ModelCache, discover_checkpoints
    from sagan_viz.app.timeline_panel import TimelinePanel, TimelineState

    entries = discover_checkpoints(tiny_checkpoint_dir)
    panel = TimelinePanel(ModelCache(torch.device("cpu")), entries)
    image, strip, gif, state = panel.show(str(tiny_checkpoint), 3, "G.attn0", TimelineState())
    snapshots = len(list((tiny_checkpoint_dir / "tiny-sagan").glob("*.safetensors")))
    assert len(state.generations) == snapshots and gif is None  # no query yet: nothing to animate
    assert strip.shape[1] >= snapshots * 32 * 3
    picture, markers = clickable_parts(image)
    assert np.array_equal(np.asarray(Image.open(picture).convert("RGB")), state.generations[-1].image)  # the newest
    assert markers == []
    image, strip, gif, state = panel.click(state, "G.attn0", Click(6.25, 25))
    assert state.queries == [(6.25, 25)]
    assert clickable_parts(image) == (picture, [(6.25, 25)])  # the same picture, the query marked
    assert Path(gif).is_relative_to(panel.files.figures)  # in the session's folder, removed with the session
    with Image.open(gif) as animation:
        assert animation.n_frames == snapshots

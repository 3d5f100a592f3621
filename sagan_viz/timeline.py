"""One image's attention across a run: the same z, class and queries through every snapshot.

A strip (one column per snapshot: the image with its query markers above one map per query, each map
scaled to its own maximum as everywhere) to sit beside the γ curve, and the paper figure of every
snapshot as the frames of an animated GIF.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .families.interface import LoadedModel
from .figure_text import draw_text, figure_font
from .grid import rescale_pixels
from .imaging import upscale_nearest
from .inspect import Generation
from .paper_figure import BACKGROUND, TEXT, figure_caption, paper_figure
from .queries import QueryView, query_views
from .render import attention_overlay, draw_arrows, draw_markers

STRIP_SCALE = 3  # display pixels per generated pixel in the strip
LABEL_HEIGHT = 18
GAP = 6


@dataclass
class TimelineSnapshot:
    """One snapshot of the run: its step, its generation from the shared inputs, and the query views."""

    step: int | None
    generation: Generation
    views: list[QueryView]


def timeline_generations(models: list[LoadedModel], z: torch.Tensor, label: int | None, weights: str = "ema",
                         truncation: float | None = None) -> list[Generation]:
    """Every model (a run's snapshots, oldest first) on the same z and class; weights each model lacks fall back."""
    return [model.generate(z=z, label=label, truncation=truncation,
                           weights=weights if weights in model.weight_choices else model.weight_choices[0])
            for model in models]


def timeline_views(generations: list[Generation], layer: str, pixels: list[tuple[float, float]],
                   image_size: tuple[int, int]) -> list[TimelineSnapshot]:
    """The query views of every snapshot at the same relative spots (pixels are in an image of image_size)."""
    snapshots = []
    for generation in generations:
        views = []
        if layer in generation.layers:
            spots = rescale_pixels(pixels, image_size, generation.image_size)
            views = query_views(generation, layer, spots)
        snapshots.append(TimelineSnapshot(step=generation.step, generation=generation, views=views))
    return snapshots


def timeline(models: list[LoadedModel], z: torch.Tensor, label: int | None, layer: str,
             pixels: list[tuple[float, float]], image_size: tuple[int, int], weights: str = "ema",
             truncation: float | None = None) -> list[TimelineSnapshot]:
    """timeline_generations then timeline_views: every snapshot on the same inputs, viewed at the same spots."""
    return timeline_views(timeline_generations(models, z, label, weights, truncation), layer, pixels, image_size)


def snapshot_column(snapshot: TimelineSnapshot, layer: str, query_count: int, scale: int = STRIP_SCALE) -> Image.Image:
    """The step, the image with markers, and one overlay with arrows per query, stacked."""
    image = snapshot.generation.image
    height, width = image.shape[:2]
    panel_width, panel_height = width * scale, height * scale
    column = Image.new("RGB", (panel_width, LABEL_HEIGHT + (panel_height + GAP) * (1 + query_count)), BACKGROUND)
    draw = ImageDraw.Draw(column)
    draw_text(draw, (2, 2), "step ?" if snapshot.step is None else f"step {snapshot.step:,}", figure_font(11), TEXT)
    top = LABEL_HEIGHT
    column.paste(draw_markers(Image.fromarray(upscale_nearest(image, scale)), snapshot.views, (width, height)), (0, top))
    key_shape = snapshot.generation.layer(layer).key_shape if layer in snapshot.generation.layers else None
    for view in snapshot.views:
        top += panel_height + GAP
        overlay = Image.fromarray(attention_overlay(image, view.attention_map, scale))
        column.paste(draw_markers(draw_arrows(overlay, view, key_shape, (width, height)), [view], (width, height)),
                     (0, top))
    return column


def timeline_strip(snapshots: list[TimelineSnapshot], layer: str) -> Image.Image:
    """Every snapshot's column side by side, oldest on the left."""
    query_count = max((len(snapshot.views) for snapshot in snapshots), default=0)
    columns = [snapshot_column(snapshot, layer, query_count) for snapshot in snapshots]
    strip = Image.new("RGB", (sum(c.width + GAP for c in columns) + GAP, max(c.height for c in columns) + 2 * GAP),
                      BACKGROUND)
    left = GAP
    for column in columns:
        strip.paste(column, (left, GAP))
        left += column.width + GAP
    return strip


def timeline_frames(snapshots: list[TimelineSnapshot], layer: str, scale: int = 6) -> list[Image.Image]:
    """The paper figure of every snapshot, padded to one size (GIF frames must match)."""
    figures = []
    for snapshot in snapshots:
        generation = snapshot.generation
        if layer in generation.layers:
            key_shape = generation.layer(layer).key_shape
            caption = figure_caption(generation, layer)
        else:
            key_shape, caption = None, f"step {snapshot.step}: no attention layer {layer}"
        figures.append(paper_figure(generation.image, snapshot.views, key_shape, scale=scale, caption=caption))
    size = (max(f.width for f in figures), max(f.height for f in figures))
    frames = []
    for figure in figures:
        frame = Image.new("RGB", size, BACKGROUND)
        frame.paste(figure, (0, 0))
        frames.append(frame)
    return frames


def write_gif(frames: list[Image.Image], path: str | Path, seconds_per_frame: float = 0.8) -> Path:
    """An animated GIF that loops over frames (adaptive palette per frame, no dithering of the maps)."""
    if not frames:
        raise ValueError("a timeline needs at least one snapshot")
    path = Path(path)
    paletted = [frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=255, dither=Image.Dither.NONE)
                for frame in frames]
    paletted[0].save(path, format="GIF", save_all=True, append_images=paletted[1:], loop=0,
                     duration=int(seconds_per_frame * 1000), disposal=1)
    return path


def strip_array(snapshots: list[TimelineSnapshot], layer: str) -> np.ndarray:
    """The strip as an (H, W, 3) uint8 array, for the app."""
    return np.asarray(timeline_strip(snapshots, layer))

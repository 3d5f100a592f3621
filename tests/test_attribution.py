"""Captum attribution on tiny CPU models: shapes, a planted dependency, gamma = 0, D's view, the tab."""
from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from figure_helpers import clickable_parts
from PIL import Image
from torch import nn

import sagan_viz.attribution as attribution
from sagan_viz import load_checkpoint
from sagan_viz.app import build_app
from sagan_viz.app.attribution_tab import AttributionOutputs, AttributionState, AttributionTab
from sagan_viz.app.catalog import ModelCache, discover_checkpoints, newest_checkpoint
from sagan_viz.attribution import (
    METHODS,
    attribution_figure,
    beta_correlation,
    discriminator_attribution,
    query_attribution,
    query_beta_row,
    summarise,
)
from sagan_viz.devices import resolve_device
from sagan_viz.grid import cell_pixel_box

COPIED_KEY = (1, 1)  # on the 16x16 grid of the tiny G's attention layer
FAR_QUERY = (14, 14)


class FixedMap(nn.Module):
    """Stands in for a 1x1 projection: the same (C_bar, H, W) map whatever x is."""

    def __init__(self, pattern: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pattern", pattern)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattern.expand(x.shape[0], -1, -1, -1)


def plant_copy_of_one_key(model, key_cell: tuple[int, int], gamma: float = 5.0) -> None:
    """Make EMA-G's attention copy h(x_k) to every query: g constant, f large at k only, gamma large."""
    layer = model.generator.attention_layers()[0][1]
    reduced = layer.channels // 8
    height = width = model.config.resolution // 2
    keys = torch.zeros(reduced, height, width)
    keys[:, key_cell[0], key_cell[1]] = 10.0  # s_{j,k} = 4 * 10 = 40 for every j, 0 elsewhere: beta_{j,k} ~ 1
    layer.g = FixedMap(torch.ones(reduced, height, width))
    layer.f = FixedMap(keys)
    with torch.no_grad():
        layer.gamma.fill_(gamma)


@pytest.fixture
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint, device="cpu")  # a private copy: tests may change its weights


@pytest.fixture
def copying_model(model):
    plant_copy_of_one_key(model, COPIED_KEY)
    return model


def far_cells(shape: tuple[int, int], query: tuple[int, int], excluded: tuple[int, int], distance: int = 4):
    """Mask of cells more than distance (Chebyshev) from the query, without the excluded cell."""
    rows, columns = np.indices(shape)
    mask = np.maximum(abs(rows - query[0]), abs(columns - query[1])) > distance
    mask[excluded] = False
    return mask


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("gamma_zero", [False, True])
def test_attribution_maps_have_the_feature_map_shape_and_are_finite(model, method, gamma_zero):
    generation = model.generate(seed=3)
    result = query_attribution(model, generation, "G.attn0", (5, 9), method, gamma_zero=gamma_zero)
    for values in (result.signed_map, result.magnitude_map):
        assert values.shape == generation.layers["G.attn0"].query_shape == (16, 16)
        assert np.isfinite(values).all()
    assert (result.magnitude_map >= np.abs(result.signed_map) - 1e-9).all()  # sum of |.| >= |sum|
    assert result.magnitude_map.max() > 0 and result.seconds > 0
    described = (result.layer, result.query_cell, result.method, result.gamma_zero)
    assert described == ("G.attn0", (5, 9), method, gamma_zero)


def test_query_cell_maps_to_its_block_of_pixels():
    assert cell_pixel_box((3, 5), (16, 16), (32, 32)) == (6, 8, 10, 12)
    assert cell_pixel_box((0, 7), (8, 8), (32, 32)) == (0, 4, 28, 32)
    with pytest.raises(ValueError, match="outside"):
        cell_pixel_box((16, 0), (16, 16), (32, 32))


@pytest.mark.parametrize("method", METHODS)
def test_a_copied_key_stands_out_far_from_the_query_and_vanishes_with_gamma_zero(copying_model, method):
    generation = copying_model.generate(seed=5)
    beta = query_beta_row(generation, "G.attn0", FAR_QUERY)
    assert beta[COPIED_KEY] > 0.99  # the planted attention really looks at k

    result = query_attribution(copying_model, generation, "G.attn0", FAR_QUERY, method)
    background = far_cells(result.magnitude_map.shape, FAR_QUERY, COPIED_KEY)
    at_key = result.magnitude_map[COPIED_KEY]
    assert at_key > 10 * result.magnitude_map[background].max()

    alone = query_attribution(copying_model, generation, "G.attn0", FAR_QUERY, method, gamma_zero=True)
    assert alone.magnitude_map[COPIED_KEY] <= alone.magnitude_map[background].max() + 1e-6 * at_key
    assert alone.magnitude_map.max() > 0  # the receptive field around the query is still there
    assert copying_model.generator.attention_layers()[0][1].gamma.item() == 5.0  # restored

    summary = summarise(result, beta, alone)
    assert summary.share_beyond > 0 and summary.beta_correlation_beyond > 0.9


def test_gamma_is_restored_and_the_model_released_when_attribution_fails(copying_model, monkeypatch):
    generation = copying_model.generate(seed=5)

    def broken(*args, **kwargs):
        raise RuntimeError("Captum failed")

    monkeypatch.setattr(attribution, "layer_input_attribution", broken)
    with pytest.raises(RuntimeError, match="Captum failed"):
        query_attribution(copying_model, generation, "G.attn0", FAR_QUERY, gamma_zero=True)
    assert copying_model.generator.attention_layers()[0][1].gamma.item() == 5.0
    assert copying_model.generate(seed=5).layers["G.attn0"].gamma == 5.0  # the lock was released


def test_raw_weights_attribute_through_the_raw_generator(copying_model):
    """The copy is planted in EMA-G only, so the raw G's attribution must not show it."""
    generation = copying_model.generate(seed=5, weights="raw")
    result = query_attribution(copying_model, generation, "G.attn0", FAR_QUERY)
    background = far_cells(result.magnitude_map.shape, FAR_QUERY, COPIED_KEY)
    assert result.magnitude_map[COPIED_KEY] < 10 * result.magnitude_map[background].max()


def test_discriminator_layers_and_unknown_methods_are_clear_errors(model):
    generation = model.generate(seed=1)
    with pytest.raises(ValueError, match="discriminator layer"):
        query_attribution(model, generation, "D.attn0", (0, 0))
    with pytest.raises(ValueError, match="method must be one of"):
        query_attribution(model, generation, "G.attn0", (0, 0), method="occlusion")
    with pytest.raises(ValueError, match="method must be one of"):
        discriminator_attribution(model, generation, method="gradient_x_activation")


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_discriminator_view_has_the_image_shape(model, method):
    generation = model.generate(seed=2)
    saliency = discriminator_attribution(model, generation, method)
    assert saliency.shape == generation.image.shape[:2] == (32, 32)
    assert np.isfinite(saliency).all() and (saliency >= 0).all() and saliency.max() > 0


def test_beta_correlation_pools_onto_a_coarser_key_grid_and_can_skip_the_receptive_field():
    rng = np.random.default_rng(0)
    beta = rng.random((4, 4))
    fine = np.repeat(np.repeat(beta, 2, axis=0), 2, axis=1) / 4  # sum-pools back to beta exactly
    assert beta_correlation(beta, fine) == pytest.approx(1.0)
    assert beta_correlation(beta, rng.random((5, 5))) is None  # 5 does not divide into 4
    skewed = fine.copy()
    skewed[:2, :2] = 100.0  # a hot receptive field ruins the plain correlation...
    mask = np.zeros((8, 8), bool)
    mask[:2, :2] = True
    assert beta_correlation(beta, skewed) < 0.9
    assert beta_correlation(beta, skewed, mask) == pytest.approx(1.0)  # ...not the one beyond it


def test_figure_has_a_panel_per_map_and_more_with_gamma_zero(copying_model):
    generation = copying_model.generate(seed=5)
    beta = query_beta_row(generation, "G.attn0", FAR_QUERY)
    result = query_attribution(copying_model, generation, "G.attn0", FAR_QUERY)
    alone = query_attribution(copying_model, generation, "G.attn0", FAR_QUERY, gamma_zero=True)
    three = attribution_figure(generation, result, beta, scale=4)
    five = attribution_figure(generation, result, beta, scale=4, gamma_zero_result=alone)
    assert three.width >= 3 * 32 * 4 and five.width >= 5 * 32 * 4 > three.width


def click(x: float, y: float) -> gr.SelectData:
    """What Gradio passes for a click at (x, y) in generated-image pixels."""
    return gr.SelectData(target=None, data={"index": [x, y], "value": None})


@pytest.fixture
def tab(tiny_checkpoint_dir):
    entries = discover_checkpoints(tiny_checkpoint_dir)
    return AttributionTab(ModelCache(resolve_device("cpu")), entries, newest_checkpoint(entries))


def test_tab_refuses_a_click_or_the_d_view_before_generate(tab):
    with pytest.raises(gr.Error, match="generate an image first"):
        tab.click(AttributionState(), "G.attn0", "gradient_x_activation", True, click(10, 10))
    with pytest.raises(gr.Error, match="generate an image first"):
        tab.show_discriminator(AttributionState(), "gradient_x_activation")
    assert tab.rerun(AttributionState(), "G.attn0", "gradient_x_activation", True) == AttributionOutputs.unchanged()


def test_tab_generates_then_a_click_shows_the_figure_and_numbers(tab):
    generated = tab.generate(str(tab.default.path), 7, "", 0.4, "ema", None, AttributionState())
    picture, markers = clickable_parts(generated.image)
    assert np.array_equal(np.asarray(Image.open(picture).convert("RGB")), generated.state.generation.image)
    assert markers == [] and generated.figure is None and "Click" in generated.details
    assert generated.layer["choices"] == ["G.attn0"] and generated.layer["value"] == "G.attn0"
    assert generated.discriminator is None  # a D view of the previous image would no longer be true
    state = generated.state
    clicked = tab.click(state, "G.attn0", "gradient_x_activation", True, click(29.375, 2.5))
    assert clicked.state.query == (29.375, 2.5) and state.query is None  # new state; the old one is untouched
    assert clickable_parts(clicked.image) == (picture, [(29.375, 2.5)])  # the same picture, the query marked
    assert Image.open(clicked.figure).width > 5 * 256  # image, beta, attribution, gamma = 0, beyond the field
    assert Path(clicked.recipe).stem == Path(clicked.figure).stem  # the recipe beside its PNG
    assert clicked.layer == clicked.discriminator == {"__type__": "update"}  # a click leaves them as they are
    assert "Captum took" in clicked.details and "G.attn0" in clicked.details
    assert re.search(r"beyond it \(only via attention\) \| \d+\.\d\d% \|", clicked.details)  # the γ = 0 run's numbers
    rerun = tab.rerun(clicked.state, "G.attn0", "integrated_gradients", False)
    assert "integrated_gradients" in rerun.details and "Tick" in rerun.details
    shown = tab.show_discriminator(clicked.state, "gradient_x_activation")
    assert Image.open(shown.discriminator).width > 2 * 256
    assert json.loads(Path(shown.discriminator_recipe).read_text())["method"] == "saliency"
    assert shown.figure == shown.state == {"__type__": "update"}


def test_the_studio_has_the_attribution_tab(tiny_checkpoint_dir):
    demo = build_app(tiny_checkpoint_dir, device="cpu")
    elem_ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"attribution-generate", "attribution-image", "attribution-figure", "attribution-d-view"} <= elem_ids

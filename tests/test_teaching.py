"""Teaching mode: the step-by-step walkthrough, the gamma override and the Teaching tab, on tiny CPU models."""
from __future__ import annotations

import copy
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from figure_helpers import clickable_parts
from PIL import Image
from torch import nn

from sagan_viz.app.catalog import ModelCache, discover_checkpoints, newest_checkpoint
from sagan_viz.app.teaching_tab import NO_QUERY, TeachingOutputs, TeachingState, TeachingTab
from sagan_viz.attention import SelfAttention
from sagan_viz.checkpoint import CheckpointContents
from sagan_viz.config import ModelConfig
from sagan_viz.devices import resolve_device
from sagan_viz.families.sagan import SaganModel as LoadedModel
from sagan_viz.imaging import to_uint8_images
from sagan_viz.inspect import Generation
from sagan_viz.latents import normal_latent as latent_for_seed
from sagan_viz.networks import Discriminator, Generator
from sagan_viz.render import MAGMA, colourise
from sagan_viz.teaching import (
    QUERY_MARK,
    TOP_KEYS,
    gamma_effect,
    gamma_slider_range,
    score_and_beta_images,
    teaching_walkthrough,
)
from sagan_viz.teaching_text import gamma_effect_markdown, gamma_text, walkthrough_markdown


def fresh_model(variant: str = "paper", gamma: float = 0.8) -> LoadedModel:
    """A tiny untrained model whose raw G and EMA-G differ, with every attention layer's gamma set."""
    config = ModelConfig(resolution=32, g_channels=16, d_channels=16, z_dim=16, attention_variant=variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        networks = {"G": Generator(config), "G_ema": Generator(config), "D": Discriminator(config)}
    for network in networks.values():
        for _, layer in network.attention_layers():
            layer.gamma.data.fill_(gamma)
    contents = CheckpointContents(
        path=Path(f"fresh-{variant}/step_0000000.safetensors"), config=config, step=0, wall_time_s=0.0,
        dataset="faces", history={}, state_dicts={part: net.state_dict() for part, net in networks.items()},
    )
    return LoadedModel(contents, torch.device("cpu"))


def layer_module(model: LoadedModel, layer: str, weights: str) -> SelfAttention:
    network = model.discriminator if layer.startswith("D.") else model.generator_for(weights)
    return dict(network.attention_layers())[layer.split(".")[1]]


def generate_recording_output(model: LoadedModel, layer: str, weights: str, seed: int = 3):
    """A generation, and what the layer really output during it: (1, C, H, W)."""
    outputs = []
    handle = layer_module(model, layer, weights).register_forward_hook(lambda m, i, out: outputs.append(out))
    try:
        generation = model.generate(seed=seed, weights=weights)
    finally:
        handle.remove()
    return generation, outputs[0]


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("layer,weights", [("G.attn0", "ema"), ("G.attn0", "raw"), ("D.attn0", "raw")])
def test_step_by_step_y_equals_what_the_layer_output_during_the_generation(variant, layer, weights):
    model = fresh_model(variant, gamma=0.8)
    generation, real_output = generate_recording_output(model, layer, weights)
    for cell in [(0, 0), (5, 11), (15, 15)]:
        w = teaching_walkthrough(model, generation, layer, cell)
        real = real_output[0, :, cell[0], cell[1]]
        assert torch.allclose(w.y, real, atol=1e-5), (cell, (w.y - real).abs().max())
        assert w.max_output_difference < 1e-5
        assert float((w.gamma * w.o).abs().max()) > 1e-2  # the attention branch really is in y
        assert torch.equal(w.x_j, generation.layers[layer].features[:, cell[0], cell[1]])


@pytest.mark.parametrize("variant,key_cells,value_channels", [("paper", 256, 32), ("official", 64, 16)])
def test_walkthrough_has_the_real_shapes_and_the_beta_row_of_the_generation(variant, key_cells, value_channels):
    model = fresh_model(variant)
    generation = model.generate(seed=5)
    w = teaching_walkthrough(model, generation, "G.attn0", (4, 9))
    assert (w.C, w.C_bar, w.C_value, w.N, w.N_key) == (32, 4, value_channels, 256, key_cells)
    assert w.query_index == 4 * 16 + 9
    assert w.x.shape == (32, 256) and w.query.shape == (4, 256)
    assert w.key.shape == (4, key_cells) and w.value.shape == (value_channels, key_cells)
    assert w.scores.shape == w.beta.shape == (key_cells,) and w.o.shape == w.y.shape == (32,)
    assert abs(float(w.beta.double().sum()) - 1) < 1e-6
    # Orientation: the walkthrough's beta is row j (query j over keys i) of the captured (N_query, N_key).
    assert torch.allclose(w.beta, generation.attention["G.attn0"][w.query_index], atol=1e-7)
    if variant == "paper":  # the column (keys' view) is a different vector
        assert not torch.allclose(w.beta, generation.attention["G.attn0"][:, w.query_index], atol=1e-4)
    assert torch.allclose(w.scores, w.key.T @ w.query_j, atol=1e-5)  # s_ij = f(x_i)^T g(x_j)


def test_walkthrough_refuses_cells_and_layers_that_do_not_exist():
    model = fresh_model()
    generation = model.generate(seed=1)
    with pytest.raises(ValueError, match="outside the 16x16 grid"):
        teaching_walkthrough(model, generation, "G.attn0", (16, 0))
    with pytest.raises(ValueError, match="G.attn7"):
        teaching_walkthrough(model, generation, "G.attn7", (0, 0))


def without_attention(network: nn.Module) -> nn.Module:
    """A copy of G or D whose attention layers are removed (identity), weights otherwise shared."""
    copied = copy.deepcopy(network)
    for index, stage in enumerate(copied.stages):
        if isinstance(stage, SelfAttention):
            copied.stages[index] = nn.Identity()
    return copied


def record_inputs_and_outputs(model: LoadedModel, weights: str) -> tuple[list, list]:
    """(records, hook handles): every attention layer of that G and of D appends (input, output) as it runs."""
    records, handles = [], []

    def record(module, inputs, output):
        records.append((inputs[0], output))

    for network in (model.generator_for(weights), model.discriminator):
        handles += [layer.register_forward_hook(record) for _, layer in network.attention_layers()]
    return records, handles


@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_gamma_zero_removes_the_attention_branch_and_is_undone_afterwards(weights):
    model = fresh_model(gamma=0.8)
    first = model.generate(seed=4, weights=weights)
    records, handles = record_inputs_and_outputs(model, weights)
    switched_off = model.generate(seed=4, weights=weights, gamma={"G.attn0": 0.0, "D.attn0": 0.0})
    for handle in handles:
        handle.remove()
    assert len(records) == 2
    for layer_input, layer_output in records:
        assert torch.equal(layer_output, layer_input)  # y = 0 * o + x is x, bit for bit
    with torch.no_grad():
        z = latent_for_seed(4, model.config.z_dim)
        expected_image = without_attention(model.generator_for(weights))(z)
        expected_score = without_attention(model.discriminator)(expected_image).item()
    assert torch.equal(switched_off.image_tensor, expected_image)
    assert switched_off.discriminator_score == expected_score
    assert not torch.allclose(first.image_tensor, switched_off.image_tensor, atol=1e-3)  # gamma 0.8 mattered
    assert switched_off.gamma_overrides == {"G.attn0": 0.0, "D.attn0": 0.0}
    assert switched_off.layers["G.attn0"].gamma == 0.0 and first.gamma_overrides == {}
    again = model.generate(seed=4, weights=weights)
    assert torch.equal(again.image_tensor, first.image_tensor)
    assert again.discriminator_score == first.discriminator_score
    for network in (model.generator, model.generator_raw, model.discriminator):
        assert all(layer.gamma.item() == pytest.approx(0.8) for _, layer in network.attention_layers())


def test_gamma_is_restored_when_the_forward_pass_fails_and_unknown_layers_are_refused(monkeypatch):
    model = fresh_model(gamma=0.8)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(model.discriminator, "forward", broken)
    with pytest.raises(RuntimeError):
        model.generate(seed=1, gamma={"G.attn0": 0.0, "D.attn0": 2.0})
    monkeypatch.undo()
    assert model.generator.attention_layers()[0][1].gamma.item() == pytest.approx(0.8)
    assert model.discriminator.attention_layers()[0][1].gamma.item() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="G.attn3.*layers: G.attn0, D.attn0"):
        model.generate(seed=1, gamma={"G.attn3": 0.0})
    model.generate(seed=1)  # the lock was released


def test_walkthrough_of_an_overridden_generation_uses_its_gamma():
    model = fresh_model(gamma=0.8)
    generation = model.generate(seed=2, gamma={"G.attn0": 0.0})
    w = teaching_walkthrough(model, generation, "G.attn0", (8, 8))
    assert w.gamma == 0.0 and w.gamma_overridden
    assert torch.equal(w.y, w.x_j) and w.max_output_difference == 0.0
    assert "set by you" in walkthrough_markdown(w)[-1][1]


def hand_generation(image_tensor: torch.Tensor, score: float, overrides: dict | None = None) -> Generation:
    return Generation(
        seed=1, z=torch.zeros(1, 4), label=None, truncation=None, weights="ema", image=to_uint8_images(image_tensor)[0], image_tensor=image_tensor,
        layers={}, discriminator_score=score, gamma_overrides=overrides or {},
    )


def test_gamma_effect_statistics_on_a_hand_made_pair():
    before = torch.zeros(1, 3, 4, 5)
    after = before.clone()
    after[0, 0, 1, 2], after[0, 1, 1, 2] = 0.5, -0.2  # 63.75 and 25.5 levels: the larger counts
    after[0, 2, 3, 4] = 0.04  # 5.1 levels: under the 8-level threshold
    effect = gamma_effect(hand_generation(before, 1.0), hand_generation(after, 0.25, {"G.attn0": 0.0}))
    expected = np.zeros((4, 5))
    expected[1, 2], expected[3, 4] = 63.75, 5.1
    np.testing.assert_allclose(effect.change, expected, atol=1e-5)
    assert effect.max_abs_change == pytest.approx(63.75)
    assert effect.mean_abs_change == pytest.approx((63.75 + 5.1) / 20, abs=1e-5)
    assert effect.share_of_pixels_changed == pytest.approx(1 / 20)
    assert (effect.difference_image[1, 2] == MAGMA[-1]).all()  # the largest change is the brightest colour
    assert (effect.difference_image[0, 0] == MAGMA[0]).all()
    np.testing.assert_array_equal(effect.difference_image[3, 4], colourise(np.array([[5.1 / 63.75]]))[0, 0])
    assert np.array_equal(effect.image, to_uint8_images(after)[0])
    text = gamma_effect_markdown(effect, {"G.attn0": 0.3})
    assert "+0.3000 → +0.0000" in text and "5.0%" in text and "+1.000 → +0.250" in text


def test_gamma_effect_of_no_change_and_of_different_seeds():
    image = torch.zeros(1, 3, 2, 2)
    effect = gamma_effect(hand_generation(image, 0.0), hand_generation(image.clone(), 0.0, {"G.attn0": 0.5}))
    assert effect.max_abs_change == 0 and effect.share_of_pixels_changed == 0
    assert (effect.difference_image == MAGMA[0]).all()
    assert "Nothing changed" in gamma_effect_markdown(effect, {"G.attn0": 0.5})
    other = hand_generation(image, 0.0)
    other.seed, other.z = 2, torch.ones(1, 4)
    with pytest.raises(ValueError, match="same z"):
        gamma_effect(hand_generation(image, 0.0), other)


def test_markdown_steps_carry_equations_real_shapes_and_the_check():
    model = fresh_model("official")
    generation = model.generate(seed=6)
    w = teaching_walkthrough(model, generation, "G.attn0", (3, 4))
    steps = walkthrough_markdown(w)
    assert len(steps) == 6
    text = "\n".join(body for _, body in steps)
    assert "C = 32, C̄ = 4, N = 16×16 = 256, N_key = 8×8 = 64" in text
    assert "$$s_{ij} = f(x_i)^\\top g(x_j)" in text and "\\beta_{j,i}" in text and "W_v" in text
    assert "**1.000000**" in text
    table = [line for line in steps[3][1].splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == TOP_KEYS
    assert f"{w.max_output_difference:.2e}" in steps[5][1]


def test_score_and_beta_maps_are_on_the_key_grid_with_the_query_framed():
    model = fresh_model()
    generation = model.generate(seed=6)
    w = teaching_walkthrough(model, generation, "G.attn0", (2, 13))
    scores, beta = score_and_beta_images(w, cell_pixels=8)
    assert scores.shape == beta.shape == (16 * 8 + 1, 16 * 8 + 1, 3)
    brightest = w.key_cell(int(w.beta.argmax()))
    darkest = w.key_cell(int(w.scores.argmin()))
    assert (beta[brightest[0] * 8 + 4, brightest[1] * 8 + 4] == MAGMA[-1]).all()
    assert (scores[darkest[0] * 8 + 4, darkest[1] * 8 + 4] == MAGMA[0]).all()
    assert (beta[2 * 8 + 1, 13 * 8 + 4] == QUERY_MARK).all()  # the frame around the query cell


def test_gamma_slider_spans_zero_to_twice_the_learned_value():
    assert gamma_slider_range(0.3) == (0.0, 0.6)
    assert gamma_slider_range(-0.2) == (-0.4, 0.0)
    assert gamma_slider_range(0.0001) == (-0.5, 0.5)


def click(x: float, y: float) -> gr.SelectData:
    """What Gradio passes for a click at (x, y) in generated-image pixels."""
    return gr.SelectData(target=None, data={"index": [x, y], "value": None})


@pytest.fixture
def tab(tiny_checkpoint_dir):
    entries = discover_checkpoints(tiny_checkpoint_dir)
    return TeachingTab(ModelCache(resolve_device("cpu")), entries, newest_checkpoint(entries))


def test_teaching_tab_generate_click_and_apply_gamma(tab):
    path = str(tab.default.path)
    generated = tab.generate(path, 7, "", 0.4, "ema", None, TeachingState())
    picture, markers = clickable_parts(generated.image)
    assert np.array_equal(np.asarray(Image.open(picture).convert("RGB")), generated.state.generation.image)
    assert markers == [] and generated.steps == NO_QUERY and generated.scores is None
    assert generated.layer["value"] == "G.attn0" and "EMA-G" in generated.status
    assert (generated.result, generated.difference, generated.effect) == (None, None, "")
    learned = generated.state.generation.layers["G.attn0"].gamma
    slider = generated.gamma
    assert slider["value"] == round(learned, 4) and gamma_text(learned) in slider["label"]
    assert slider["minimum"] <= 0 <= slider["maximum"]
    clicked = tab.click(generated.state, "G.attn0", click(6.25, 12.5))
    state = clicked.state
    assert state.pixel == (6.25, 12.5)
    assert clickable_parts(clicked.image) == (picture, [(6.25, 12.5)])  # the same picture, the query marked
    assert f'fill="rgb{QUERY_MARK}"' in clicked.image  # in the colour of its frame on the key grid
    assert clicked.scores["value"].shape == clicked.beta["value"].shape == (257, 257, 3)
    assert "C = 32, C̄ = 4, N = 16×16 = 256" in clicked.steps and "$$y_j = \\gamma\\, o_j + x_j$$" in clicked.steps
    assert "cell (row 6, col 3)" in clicked.steps
    assert clicked.gamma == clicked.status == clicked.effect == {"__type__": "update"}  # a click leaves them
    applied = tab.apply_gamma(state, "G.attn0", 0.0)
    assert applied.result.shape == applied.difference.shape == (512, 512, 3)
    assert "→ +0.0000" in applied.effect and "pixels changed" in applied.effect
    assert applied.image == applied.steps == applied.state == {"__type__": "update"}  # only the γ outputs change
    assert state.generation.gamma_overrides == {}  # the learned generation stays the reference


def test_teaching_tab_switches_layer_and_d_gamma_leaves_the_image(tab):
    state = tab.generate(str(tab.default.path), 2, "", 0.4, "raw", None, TeachingState()).state
    state = tab.click(state, "G.attn0", click(16, 16)).state
    switched = tab.change_layer(state, "D.attn0")
    assert "D.attn0" in switched.gamma["label"] and (switched.result, switched.difference, switched.effect) == (None, None, "")
    assert "N = 16×16 = 256" in switched.steps  # D's attention sits on its 16x16 map of the 32x32 image
    assert switched.layer == {"__type__": "update"}  # the dropdown the user just changed is left alone
    assert tab.change_layer(TeachingState(), "D.attn0") == TeachingOutputs.unchanged()  # nothing generated yet
    applied = tab.apply_gamma(switched.state, "D.attn0", 0.0)
    assert "only D's judgement" in applied.effect
    assert (applied.difference == MAGMA[0].astype(np.uint8)).all()


def test_teaching_tab_errors_are_clear_messages(tab, tiny_checkpoint_dir):
    with pytest.raises(gr.Error, match="generate an image first"):
        tab.click(TeachingState(), "G.attn0", click(1, 1))
    with pytest.raises(gr.Error, match="generate an image first"):
        tab.apply_gamma(TeachingState(), "G.attn0", 0.0)
    with pytest.raises(gr.Error, match="choose a checkpoint"):
        tab.generate(None, 1, "", 0.4, "ema", None, TeachingState())
    no_attention = next(e for e in tab.entries if not e.has_attention)
    with pytest.raises(gr.Error, match="no attention layers"):
        tab.generate(str(no_attention.path), 1, "", 0.4, "ema", None, TeachingState())
    state = tab.generate(str(tab.default.path), 1, "", 0.4, "ema", None, TeachingState()).state
    with pytest.raises(gr.Error, match="outside the 32x32 image"):
        tab.click(state, "G.attn0", click(32, 3))
    with pytest.raises(gr.Error, match="choose a value"):
        tab.apply_gamma(state, "G.attn0", None)

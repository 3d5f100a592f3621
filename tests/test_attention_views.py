"""The reverse map and the attention effect, against the whole β and the layer's own forward pass."""
from __future__ import annotations

import pytest
import torch

from sagan_viz import load_checkpoint
from sagan_viz.attention_views import attention_column, attention_effect, reverse_view
from sagan_viz.grid import cell_to_index


@pytest.fixture(scope="module")
def biggan_generation(tiny_biggan_deep):
    return load_checkpoint(tiny_biggan_deep, device="cpu").generate(seed=5, label=207)


def test_a_column_of_beta_is_each_querys_share_of_that_key(biggan_generation):
    capture = biggan_generation.layer("G.attn0")
    beta = capture.attention  # (256, 64): 16x16 queries over 8x8 pooled keys
    for key_index in (0, 17, 63):
        torch.testing.assert_close(attention_column(capture, key_index), beta[:, key_index], atol=1e-7, rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        attention_column(capture, 64)


def test_reverse_view_maps_a_clicked_key_onto_the_query_grid(biggan_generation):
    capture = biggan_generation.layer("G.attn0")
    view = reverse_view(biggan_generation, "G.attn0", (9.0, 30.0), (255, 0, 0))  # x 9 of 32, y 30 of 32
    assert view.cell == (7, 2)  # on the 8x8 key grid
    assert view.attention_map.shape == (16, 16)
    expected = capture.attention[:, cell_to_index((7, 2), (8, 8))].reshape(16, 16).numpy()
    assert abs(view.attention_map - expected).max() < 1e-6
    assert "receives" in view.caption[-1]


def test_attention_effect_is_what_the_layer_adds_relative_to_its_input(biggan_generation, tiny_checkpoint):
    for generation, layer in ((biggan_generation, "G.attn0"),
                              (load_checkpoint(tiny_checkpoint, device="cpu").generate(seed=1), "D.attn0")):
        capture = generation.layer(layer)
        x = capture.features.unsqueeze(0)
        learned = capture.module.gamma.detach().clone()
        with torch.no_grad():
            try:
                capture.module.gamma.fill_(0.8)  # the tiny run's gammas are ~0: make the branch count
                y = capture.module(x)[0]  # the layer's own forward pass (fused or explicit path)
                expected = ((y - capture.features).norm(dim=0) / capture.features.norm(dim=0)).numpy()
                effect = attention_effect(capture)
                capture.module.gamma.fill_(0.0)
                assert abs(attention_effect(capture)).max() == 0.0  # gamma = 0: attention changes nothing
            finally:
                capture.module.gamma.copy_(learned)
        assert effect.shape == capture.query_shape
        assert abs(effect - expected).max() < 1e-4 and effect.max() > 1e-3


def test_the_inspect_panels_in_column_and_effect_mode(biggan_generation):
    from sagan_viz.app.views import inspect_view

    column = inspect_view(biggan_generation, "G.attn0", [(9.0, 30.0), (20.0, 4.0)], mode="column")
    assert "reverse view" in column.details and column.details.count("<tr>") == 3  # header + two keys
    row = inspect_view(biggan_generation, "G.attn0", [(9.0, 30.0), (20.0, 4.0)], mode="row")
    assert column.figure.size == row.figure.size  # image + two panels either way
    assert not (column.grid == row.grid).all()  # a column (16x16 query grid) is not a row (8x8 key grid)
    effect = inspect_view(biggan_generation, "G.attn0", [], mode="effect")
    assert "where attention acts" in effect.details and "max" in effect.details
    with pytest.raises(ValueError, match="mode"):
        inspect_view(biggan_generation, "G.attn0", [], mode="diagonal")

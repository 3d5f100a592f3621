"""A click becomes the right query cell, and its view is exactly that row of beta on the key grid."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sagan_viz.checkpoint import CheckpointContents
from sagan_viz.config import ModelConfig
from sagan_viz.families.sagan import SaganModel
from sagan_viz.networks import build_networks
from sagan_viz.paper_figure import figure_for_queries, figure_layout
from sagan_viz.queries import MAX_QUERIES, QUERY_COLOURS, query_view


def tiny_generation(variant: str):
    """Seed 3 of an untrained 32x32 model with attention at 16x16 in G and D (the CLI test covers files)."""
    torch.manual_seed(0)
    config = ModelConfig(g_channels=16, d_channels=16, z_dim=16, attention_variant=variant)
    generator, discriminator = build_networks(config)
    contents = CheckpointContents(
        path=Path(f"{variant}.safetensors"), config=config, step=0, wall_time_s=0.0, dataset="test", history={},
        state_dicts={"G": generator.state_dict(), "G_ema": generator.state_dict(), "D": discriminator.state_dict()},
    )
    return SaganModel(contents, torch.device("cpu")).generate(seed=3)



@pytest.fixture(scope="module")
def generations(one_thread):
    return {variant: tiny_generation(variant) for variant in ("paper", "official")}


@pytest.mark.parametrize(
    "click, display_size",
    [((25.0, 5.0), None), ((200, 40), (256, 256)), ((79, 16), (100, 100)), ((25.9, 5.99), (32, 32))],
)
def test_click_maps_to_feature_cell_at_any_display_scale(generations, click, display_size):
    view = query_view(generations["paper"], "G.attn0", click, QUERY_COLOURS[0], display_size=display_size)
    assert view.cell == (2, 12)  # row from y, column from x, on the 16x16 query grid
    scale = 32 / (display_size or (32, 32))[0]
    assert view.pixel == pytest.approx((click[0] * scale, click[1] * scale))


def test_last_pixel_maps_to_last_cell(generations):
    view = query_view(generations["paper"], "D.attn0", (99.9, 0.0), QUERY_COLOURS[0], display_size=(100, 100))
    assert view.cell == (0, 15)


@pytest.mark.parametrize("variant, key_shape", [("paper", (16, 16)), ("official", (8, 8))])
@pytest.mark.parametrize("layer", ["G.attn0", "D.attn0"])
def test_query_view_is_the_beta_row_of_its_cell_on_the_key_grid(generations, variant, key_shape, layer):
    generation = generations[variant]
    capture = generation.layers[layer]
    assert capture.key_shape == key_shape
    view = query_view(generation, layer, (22.5, 9.0), QUERY_COLOURS[3], max_peaks=2)
    row, column = 4, 11  # y 9 of 32 -> row 4 of 16; x 22.5 -> column 11
    assert view.cell == (row, column)
    expected = capture.attention[row * 16 + column].reshape(key_shape).numpy()
    assert view.attention_map.shape == key_shape
    # One row is computed on its own (a click needs no more), so it may differ from the full matrix in rounding.
    np.testing.assert_allclose(view.attention_map, expected, rtol=1e-6, atol=1e-9)
    assert view.attention_map.sum() == pytest.approx(1.0, abs=1e-5)
    transposed = capture.attention[column * 16 + row].reshape(key_shape).numpy()
    assert not np.allclose(view.attention_map, transposed)  # the test can tell rows from columns
    assert view.colour == QUERY_COLOURS[3]
    # An untrained layer's beta is within a few percent of uniform: no peak stands out, so no arrows.
    assert view.attention_map.max() * view.attention_map.size < 1.5 and view.peaks == []


def test_pixel_outside_the_image_is_a_clear_error(generations):
    with pytest.raises(ValueError, match="outside the 32x32 image"):
        query_view(generations["paper"], "G.attn0", (32.0, 4.0), QUERY_COLOURS[0])
    with pytest.raises(ValueError, match="outside"):
        query_view(generations["paper"], "G.attn0", (-1.0, 4.0), QUERY_COLOURS[0])


def test_unknown_layer_error_lists_the_layers(generations):
    with pytest.raises(ValueError, match="G.attn0, D.attn0"):
        query_view(generations["paper"], "G.attn7", (4.0, 4.0), QUERY_COLOURS[0])


def test_figure_for_queries_uses_the_colours_in_order_and_has_the_layout_size(generations):
    figure = figure_for_queries(generations["official"], "G.attn0", [(4.0, 4.0), (20.0, 30.0)], scale=4, step=12)
    caption = "G.attn0 (γ = +0.000) · EMA G · seed 3 · step 12"
    one = figure_for_queries(generations["official"], "G.attn0", [(4.0, 4.0)], scale=4, step=12)
    width, height = figure.size
    # The image and one map per query side by side, each 32 px x 4: a second query adds at least a panel.
    assert width >= 3 * 32 * 4 and height >= 32 * 4 and width - one.size[0] >= 32 * 4
    left, top = figure_layout((32, 32), 2, 4, caption).panel_origin(0)
    marker_centre = np.asarray(figure)[top + 30 * 4, left + 20 * 4].astype(int)  # second query: second colour
    assert np.abs(marker_centre - QUERY_COLOURS[1]).max() <= 4


def test_more_queries_than_colours_is_refused(generations):
    with pytest.raises(ValueError, match=f"at most {MAX_QUERIES}"):
        figure_for_queries(generations["paper"], "G.attn0", [(1.0, 1.0)] * (MAX_QUERIES + 1))

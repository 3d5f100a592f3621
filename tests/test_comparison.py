"""A Compare panel's title says each thing once."""
from sagan_viz.comparison import panel_caption


def test_a_panel_caption_leaves_out_what_the_checkpoint_label_already_says():
    title = "faces32-sagan · step 10750 · 32px"
    described = "G.attn0 (γ = -0.204) · EMA G · seed 7 · step 10750"
    assert panel_caption(title, described) == "faces32-sagan · step 10750 · 32px · G.attn0 (γ = -0.204) · EMA G · seed 7"


def test_a_panel_caption_keeps_every_part_when_nothing_repeats():
    assert panel_caption("run-a", "G.attn0 (γ = +0.100) · raw G · seed 3 · step 5") == (
        "run-a · G.attn0 (γ = +0.100) · raw G · seed 3 · step 5")

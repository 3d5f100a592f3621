"""The last line of defence: a generation with NaN or inf is never drawn as numbers, only one warning."""
from sagan_viz import load_checkpoint
from sagan_viz.app.views import inspect_view


def test_a_generation_with_non_finite_values_shows_one_warning_instead_of_numbers(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint, device="cpu")
    sound = model.generate(seed=1)
    assert sound.problem is None
    assert "max β" in inspect_view(sound, "G.attn0", [(5.0, 5.0)]).details
    broken = model.generate(seed=1, gamma={"G.attn0": float("inf")})  # a γ override the loader cannot see
    assert "non-finite values (NaN/inf)" in broken.problem
    view = inspect_view(broken, "G.attn0", [(5.0, 5.0)])
    assert "non-finite values (NaN/inf)" in view.details and "max β" not in view.details and "nan" not in view.details
    assert view.grid is None


def test_a_non_finite_attention_row_from_finite_inputs_also_shows_the_warning(tiny_checkpoint):
    generation = load_checkpoint(tiny_checkpoint, device="cpu").generate(seed=2)
    capture = generation.layers["G.attn0"]
    capture.features = capture.features * 1e30  # finite, but f(x)^T g(x) overflows to inf: β is NaN
    assert generation.problem is None
    view = inspect_view(generation, "G.attn0", [(5.0, 5.0)])
    assert "non-finite values (NaN/inf) in β of G.attn0" in view.details and "max β" not in view.details

"""Every model family through the one interface: the notebook API, the figure CLI and the studio's tabs
open BigGAN-deep as they open this project's checkpoints, and give what the original model gives."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sagan_viz import CheckpointError, load_checkpoint
from sagan_viz.app.attribution_tab import AttributionState, AttributionTab
from sagan_viz.app.catalog import ModelCache, StatisticsCache, discover_checkpoints, entry_for
from sagan_viz.app.compare_tab import CompareTab
from sagan_viz.app.dynamics_tab import DynamicsTab
from sagan_viz.app.inspect_tab import InspectTab
from sagan_viz.app.state import CompareState, InspectState
from sagan_viz.families import family_for
from sagan_viz.figure import main as figure_main
from sagan_viz.teaching import teaching_walkthrough


class Click:
    """What a clickable image's select event hands a callback: the clicked (x, y) in generated-image pixels."""

    def __init__(self, x: float, y: float) -> None:
        self.index = (x, y)


@pytest.fixture(scope="module")
def reference(tiny_biggan_deep):
    """The package's own model, loaded as its README says, in eval mode (no power iteration per call)."""
    from pytorch_pretrained_biggan import BigGAN

    return BigGAN.from_pretrained(str(tiny_biggan_deep)).eval()


@pytest.fixture(scope="module")
def model(tiny_biggan_deep):
    return load_checkpoint(tiny_biggan_deep, device="cpu")


def reference_attention(reference, z, class_vector, truncation) -> torch.Tensor:
    """β the package's way (theta, 2x2 max-pooled phi, softmax over keys) from its own layer's input."""
    layer = next(module for module in reference.modules() if type(module).__name__ == "SelfAttn")
    seen = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.setdefault("x", inputs[0]))
    with torch.no_grad():
        reference(z, class_vector, truncation)
        handle.remove()
        x = seen["x"]
        theta = layer.snconv1x1_theta(x).flatten(2)  # (1, C/8, N)
        phi = F.max_pool2d(layer.snconv1x1_phi(x), 2).flatten(2)  # (1, C/8, N/4)
        return torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)[0]


def test_a_biggan_deep_folder_opens_with_its_grids_classes_and_what_it_lacks(model, tiny_biggan_deep):
    assert family_for(tiny_biggan_deep).FAMILY == model.family == "biggan-deep"
    assert (model.resolution, model.num_classes, model.z_dim) == (32, 1000, 8)
    [layer] = model.attention_layers()
    assert (layer.name, layer.query_shape, layer.key_shape) == ("G.attn0", (16, 16), (8, 8))  # pooled keys
    assert model.discriminator is None and model.history is None and model.weight_choices == ("ema",)
    assert model.class_names[207] == "golden retriever" and model.class_names[0] == "tench"
    report = model.report()
    assert "no discriminator" in report and "16×16" in report and "8×8" in report


@pytest.mark.parametrize("truncation", [0.4, 1.0, 0.7])
@pytest.mark.parametrize("label", [207, 0, 999])
def test_explicit_z_and_class_give_what_the_package_gives(model, reference, truncation, label):
    z = torch.randn(1, 8, generator=torch.Generator().manual_seed(label)) * truncation
    class_vector = torch.zeros(1, 1000)
    class_vector[0, label] = 1.0
    with torch.no_grad():
        expected = reference(z, class_vector, truncation)
    generation = model.generate(z=z, label=label, truncation=truncation)
    assert (generation.image_tensor - expected).abs().max() <= 1e-4
    assert expected.std() > 0.05  # a real image, not a flat one that anything would match
    beta = generation.attention["G.attn0"]
    assert beta.shape == (256, 64)
    torch.testing.assert_close(beta.sum(dim=1), torch.ones(256), atol=1e-5, rtol=0)
    assert (beta - reference_attention(reference, z, class_vector, truncation)).abs().max() <= 1e-5
    assert generation.image.shape == (32, 32, 3) and generation.image.dtype == np.uint8


def test_a_seed_draws_z_from_the_truncated_normal_scaled_by_truncation(model):
    for truncation in (0.3, 1.0):
        z = model.generate(seed=11, truncation=truncation).z
        assert z.abs().max() <= 2 * truncation + 1e-6
    again = model.generate(seed=11, truncation=0.3)
    assert torch.equal(again.z, model.generate(seed=11, truncation=0.3).z)
    assert not torch.equal(again.z, model.generate(seed=12, truncation=0.3).z)
    assert model.generate(seed=11).truncation == 0.4  # the package README's value by default
    with pytest.raises(ValueError, match="truncation"):
        model.generate(seed=1, truncation=1.5)
    with pytest.raises(ValueError, match="label 1000"):
        model.generate(seed=1, label=1000)
    with pytest.raises(ValueError, match="8 values"):
        model.generate(z=torch.zeros(1, 9))


def test_a_click_reads_one_beta_row_equal_to_the_row_of_the_whole_matrix(model):
    generation = model.generate(seed=4, label=281)
    capture = generation.layer("G.attn0")
    torch.testing.assert_close(capture.attention_row(37), capture.attention[37], atol=1e-7, rtol=1e-6)
    assert generation.origin == "seed 4 · tabby (281) · truncation 0.4"


def test_classes_are_found_by_index_or_name(model):
    assert model.class_for_text("207") == 207
    assert model.class_for_text("Golden Retriever") == 207
    with pytest.raises(ValueError, match="did you mean"):
        model.class_for_text("golden retreiver")


def test_files_no_family_reads_are_refused_naming_them(tmp_path, tiny_biggan_deep):
    stray = tmp_path / "weights.pt"
    stray.write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError, match="weights.pt.*not a checkpoint"):
        load_checkpoint(stray)
    lonely = tmp_path / "lonely" / "pytorch_model.bin"
    lonely.parent.mkdir()
    lonely.write_bytes((tiny_biggan_deep / "pytorch_model.bin").read_bytes())
    with pytest.raises(CheckpointError, match="lonely"):
        load_checkpoint(lonely)
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text((tiny_biggan_deep / "config.json").read_text())
    (truncated / "pytorch_model.bin").write_bytes((tiny_biggan_deep / "pytorch_model.bin").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing")


def test_the_project_family_still_opens_its_own_files(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint, device="cpu")
    assert model.family == "sagan-viz" and model.discriminator is not None
    assert [layer.name for layer in model.attention_layers()] == ["G.attn0", "D.attn0"]
    generation = model.generate(seed=3)
    assert set(generation.attention) == {"G.attn0", "D.attn0"} and generation.discriminator_score is not None
    with pytest.raises(ValueError, match="take no truncation"):
        model.generate(seed=3, truncation=0.5)


def test_figure_cli_takes_a_class_name_and_a_truncation(tiny_biggan_deep, tmp_path, capsys):
    out = tmp_path / "figure.png"
    figure_main(["--checkpoint", str(tiny_biggan_deep), "--class", "golden retriever", "--truncation", "0.5",
                 "--seed", "3", "--query", "10,10", "--query", "25,5", "--out", str(out)])
    assert "golden retriever (207)" in capsys.readouterr().out
    width, height = Image.open(out).size
    assert width > 3 * height / 2  # the image and one map per query
    for arguments, message in ((["--class", "golden retreiver"], "did you mean"), (["--truncation", "1.5"], "truncation"),
                               (["--weights", "raw"], "holds only ema")):
        with pytest.raises(SystemExit) as stop:
            figure_main(["--checkpoint", str(tiny_biggan_deep), "--out", str(out), *arguments])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def studio(tiny_biggan_deep, tiny_checkpoint_dir):
    entries = discover_checkpoints(tiny_checkpoint_dir) + [entry_for(tiny_biggan_deep)]
    return entries, entries[-1], ModelCache(torch.device("cpu"))


def test_inspect_generates_a_chosen_class_and_truncation_and_answers_clicks(studio, tiny_biggan_deep):
    entries, default, cache = studio
    assert default.family == "biggan-deep" and default.class_names[207] == "golden retriever"
    tab = InspectTab(cache, entries, default)
    *outputs, state, layer_update, status = tab.generate(str(tiny_biggan_deep), 5, "207", 0.5, "raw", None,
                                                         InspectState())
    assert "golden retriever (207)" in status and "truncation 0.5" in status and "no discriminator" in status
    assert layer_update["value"] == "G.attn0" and state.generation.weights == "ema"  # the only weights it has
    display, figure, details, grid, download, recipe, state = tab.click(state, "G.attn0", Click(6.25, 18.75))
    assert len(state.queries) == 1 and "8×8" in details


def test_tabs_that_need_what_biggan_deep_lacks_say_so(studio, tiny_biggan_deep):
    entries, default, cache = studio
    gamma, losses, note = DynamicsTab(StatisticsCache(cache), entries, default).show(str(tiny_biggan_deep))
    assert gamma is None and losses is None and "no training history" in note
    tab = AttributionTab(cache, entries, default)
    state = tab.generate(str(tiny_biggan_deep), 1, "", 0.4, "ema", None, AttributionState()).state
    with pytest.raises(gr.Error, match="no discriminator"):
        tab.show_discriminator(state, "gradient_x_activation")


def test_teaching_walks_a_biggan_layer_to_its_own_output(model):
    generation = model.generate(seed=2, label=1)
    walkthrough = teaching_walkthrough(model, generation, "G.attn0", (5, 9))
    assert walkthrough.variant == "official" and walkthrough.key_shape == (8, 8)
    torch.testing.assert_close(walkthrough.y, walkthrough.layer_output, atol=1e-5, rtol=1e-5)


def test_compare_spans_seeds_classes_and_families(studio, tiny_biggan_deep, tiny_checkpoint):
    entries, default, cache = studio
    tab = CompareTab(cache, entries, default)
    state = tab.generate([str(tiny_biggan_deep)], "1, 2", "207, tabby", 0.4, "ema", "G.attn0", CompareState()).state
    assert [(g.seed, g.label) for g in state.generations] == [(1, 207), (1, 281), (2, 207), (2, 281)]
    with pytest.raises(gr.Error, match="at most 4"):
        tab.generate([str(tiny_biggan_deep)], "1, 2, 3", "207, tabby", 0.4, "ema", "G.attn0", CompareState())
    mixed = tab.generate([str(tiny_biggan_deep), str(tiny_checkpoint)], "7", "", 0.4, "ema", "G.attn0",
                         CompareState()).state
    clicked = tab.click(mixed, "G.attn0", Click(16, 16))
    assert [panel["visible"] for panel in clicked.panels] == [True, True, False, False]
    assert [generation.image.shape[0] for generation in mixed.generations] == [32, 32]


def test_an_uploaded_research_checkpoint_is_reported_as_imported(studio):
    entries, default, cache = studio
    fixture = Path(__file__).parent / "fixtures" / "heykeetae" / "1000_G.pth"
    *_, message = InspectTab(cache, entries, default).upload(str(fixture))
    assert "1000_G.pth" in message and "heykeetae" in message and "training history" in message
    *_, status = InspectTab(cache, entries, default).generate(str(fixture), 2, "", 0.4, "raw", None, InspectState())
    assert "What was imported" in status and "G.attn1 (32×32 queries" in status


def test_a_sagan_viz_model_folds_spectral_norm_and_computes_exactly_what_the_trained_networks_do(tiny_checkpoint):
    from torch.nn.utils import parametrize

    from sagan_viz.checkpoint import build_networks_from, read_checkpoint

    model = load_checkpoint(tiny_checkpoint, "cpu")
    trained = dict(zip(("raw", "ema", "D"), build_networks_from(read_checkpoint(tiny_checkpoint))))
    assert not any(parametrize.is_parametrized(module) for module in model.generators["ema"].modules())
    assert any(parametrize.is_parametrized(module) for module in trained["ema"].modules())  # as the trainer has them
    z = torch.randn(3, model.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for weights in ("raw", "ema"):
            images = model.generators[weights](z, None)
            assert torch.equal(images, trained[weights](z, None))  # bit for bit, not merely close
        assert torch.equal(model.discriminator(images, None), trained["D"](images, None))

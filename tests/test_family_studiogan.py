"""PyTorch-StudioGAN runs (SAGAN and BigGAN), held to the outputs of StudioGAN's own code (tests/fixtures/studiogan)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sagan_viz.checkpoint import CheckpointError
from sagan_viz.families import mmgen, studiogan
from sagan_viz.families.state_files import NUMPY_SCALARS

FIXTURE = Path(__file__).parent / "fixtures" / "studiogan"
SAGAN_G = FIXTURE / "sagan" / "model=G-current-weights-step=1200.pth"
SAGAN_D = FIXTURE / "sagan" / "model=D-current-weights-step=1200.pth"
BIGGAN = {model: FIXTURE / "biggan" / f"model={model}-best-weights-step=3000.pth" for model in ("G", "G_ema", "D")}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


@pytest.fixture(scope="module")
def sagan():
    return studiogan.open_model(SAGAN_G, CPU)


@pytest.fixture(scope="module")
def biggan():
    return studiogan.open_model(BIGGAN["G_ema"], CPU)


def read(path: Path) -> dict:
    with torch.serialization.safe_globals(NUMPY_SCALARS):
        return torch.load(path, weights_only=True)


def grids(model) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    return [(info.name, info.query_shape, info.key_shape) for info in model.attention_layers()]


def test_a_sagan_run_opens_its_raw_generator_and_discriminator_with_their_grids(sagan):
    assert (sagan.family, sagan.resolution, sagan.num_classes, sagan.z_dim, sagan.step) == ("studiogan", 32, 10, 16, 1200)
    assert sagan.weight_choices == ("raw",) and sagan.discriminator is not None and sagan.history is None
    assert grids(sagan) == [("G.attn0", (16, 16), (8, 8)), ("D.attn0", (16, 16), (8, 8))]  # keys max-pooled 2x2
    assert sagan.config.backbone == "resnet" and sagan.run_name == "CIFAR10-SAGAN-train-2022_01_01_00_00_00"
    report = sagan.report()
    for words in ("studiogan", "resnet backbone", "32×32", "10 classes", "G.attn0 (16×16 queries over 8×8 keys)",
                  "D.attn0", "no EMA generator (model=G_ema-current-weights-step=1200.pth)", "no training history",
                  "one power iteration", "step 1200"):
        assert words in report


@pytest.mark.parametrize("model", ["G", "G_ema", "D"])
def test_any_file_of_a_biggan_save_opens_the_whole_save(model):
    summary = studiogan.summarise(BIGGAN[model])
    assert (summary.family, summary.step, summary.resolution, summary.num_classes) == ("studiogan", 3000, 32, 10)
    assert summary.weight_choices == ("ema", "raw") and summary.layers == ("G.attn0", "D.attn0")
    assert summary.path == BIGGAN["G_ema"]  # one entry per save in a list, whichever file was found
    if model == "D":
        loaded = studiogan.open_model(BIGGAN[model], CPU)
        assert loaded.weight_choices == ("ema", "raw") and loaded.discriminator is not None
        assert loaded.config.backbone == "big_resnet" and loaded.config.shared_dim == 8 and loaded.z_dim == 20
        assert grids(loaded) == [("G.attn0", (8, 8), (4, 4)), ("D.attn0", (8, 8), (4, 4))]
        assert "Read G_ema, G, D" in loaded.report() and "BigGAN (big_resnet backbone)" in loaded.report()


@pytest.mark.parametrize("run, weights", [("sagan", "raw"), ("biggan", "ema"), ("biggan", "raw")])
@pytest.mark.parametrize("index", [0, 1])
def test_image_score_and_beta_are_what_studiogans_sampling_gives(sagan, biggan, expected, run, weights, index):
    model, theirs = (sagan if run == "sagan" else biggan), expected[run]
    generation = model.generate(z=theirs["z"][index], label=int(theirs["labels"][index]), weights=weights)
    image = theirs[weights]["images"][index]
    assert (generation.image_tensor[0] - image).abs().max() <= 1e-4
    assert image.std() > 0.1 and (image.abs() > 0.99).float().mean() < 0.01  # neither flat nor saturated
    score = theirs[weights]["scores"][index].item()
    assert abs(generation.discriminator_score - score) <= 1e-4 * max(1.0, abs(score))
    if index == 0:  # β of the first sample, as their softmax produced it
        for layer, beta in theirs[weights]["beta"].items():
            assert (generation.attention[layer] - beta).abs().max() <= 1e-5, layer
        peaked = theirs[weights]["beta"]["G.attn0"]
        assert peaked.max(dim=1).values.mean() > 2 / peaked.shape[1]  # G's rows are not uniform: orientation matters
        torch.testing.assert_close(generation.attention["G.attn0"].sum(dim=1), torch.ones(peaked.shape[0]))


def test_spectral_norm_is_folded_as_studiogan_samples_not_as_plain_eval_mode(sagan, expected):
    theirs = expected["sagan"]
    image = sagan.generate(z=theirs["z"][0], label=int(theirs["labels"][0]), weights="raw").image_tensor[0]
    # G.eval() alone divides by u^T W v of the stored vectors; StudioGAN's sampling first runs a power iteration
    assert (theirs["raw_plain_eval"][0] - theirs["raw"]["images"][0]).abs().max() > 1e-2
    assert (image - theirs["raw"]["images"][0]).abs().max() <= 1e-4


def test_a_seed_draws_a_standard_normal_z_and_there_is_no_truncation(sagan):
    generation = sagan.generate(seed=5, weights="raw")
    assert generation.z.shape == (1, 16) and generation.label == 5 and generation.truncation is None
    assert torch.equal(generation.z, torch.randn(1, 16, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="take no truncation"):
        sagan.generate(seed=5, weights="raw", truncation=0.5)
    with pytest.raises(ValueError, match=r"one of \('raw',\)"):
        sagan.generate(seed=5, weights="ema")  # this run kept no EMA generator


def test_a_generator_alone_opens_and_says_it_has_no_discriminator(tmp_path):
    lonely = tmp_path / "run" / SAGAN_G.name
    lonely.parent.mkdir()
    shutil.copy(SAGAN_G, lonely)
    model = studiogan.open_model(lonely, CPU)
    assert model.discriminator is None and [info.name for info in model.attention_layers()] == ["G.attn0"]
    assert "no discriminator (model=D-current-weights-step=1200.pth)" in model.report()
    only_d = tmp_path / "only_d" / SAGAN_D.name
    only_d.parent.mkdir()
    shutil.copy(SAGAN_D, only_d)
    with pytest.raises(CheckpointError, match=r"looks like a StudioGAN discriminator checkpoint, but no model=G-"):
        studiogan.open_model(only_d, CPU)


def test_claims_studiogan_file_names_and_nothing_else(tmp_path):
    for path in (SAGAN_G, SAGAN_D, *BIGGAN.values()):
        assert studiogan.claims(path)
    ours = tmp_path / "step_0000100.safetensors"
    save_file({"x": torch.zeros(1)}, ours)
    deep = tmp_path / "biggan-deep-128"
    deep.mkdir()
    (deep / "config.json").write_text("{}")
    bare = tmp_path / "100_G.pth"  # heykeetae: a bare state dict with weight_bar keys
    torch.save({"l1.0.weight_bar": torch.zeros(2), "l1.0.weight_u": torch.zeros(2)}, bare)
    renamed = tmp_path / "model=G-best-weights.pth"  # no step: not a name StudioGAN writes
    shutil.copy(SAGAN_G, renamed)
    for path in (ours, deep, bare, renamed, FIXTURE.parent / "mmgen" / "sagan_cifar_inplace.pth", tmp_path / "none"):
        assert not studiogan.claims(path)
    assert not mmgen.claims(SAGAN_G) and not mmgen.claims(BIGGAN["D"])  # and mmgen does not take StudioGAN's


def rewrite(tmp_path: Path, source: Path, change) -> Path:
    """A copy of a save's files in tmp_path with one file's dict changed; returns the changed file's path."""
    folder = tmp_path / source.parent.name
    shutil.copytree(source.parent, folder)
    data = read(source)
    change(data)
    torch.save(data, folder / source.name)
    return folder / source.name


def set_item(key, value):
    return lambda data: data["state_dict"].__setitem__(key, value)


def change_nan(data):
    data["state_dict"]["linear0.weight_orig"][0, 0] = float("nan")


def change_attention_width(data):
    state = data["state_dict"]
    state["blocks.2.0.conv1x1_phi.weight_orig"] = torch.randn(3, 16, 1, 1)
    state["blocks.2.0.conv1x1_phi.weight_u"] = torch.randn(3)


BROKEN = {
    "a NaN": (SAGAN_G, change_nan, "linear0.weight_orig holds NaN"),
    "a key missing": (SAGAN_G, lambda data: data["state_dict"].pop("bn4.running_var"), r"missing \['bn4.running_var'\]"),
    "a wrong shape": (SAGAN_G, change_attention_width,
                      r"blocks.2.0.conv1x1_phi.weight has shape \(3, 16, 1, 1\), the architecture needs \(2, 16, 1, 1\)"),
    "a u of the wrong length": (SAGAN_G, set_item("conv2d5.weight_u", torch.ones(4)), "conv2d5.weight_orig has no u of"),
    "an extra layer": (SAGAN_G, set_item("info_mix_linear.weight", torch.ones(2, 2)), r"unexpected \['info_mix_linear"),
    "negative variances": (SAGAN_G, set_item("bn4.running_var", -torch.ones(16)), "negative variances"),
    "an unrelated state dict": (SAGAN_G, lambda data: data.__setitem__("state_dict", {"fc.weight": torch.ones(3, 3)}),
                                "it has no blocks.N layers"),
    "no state_dict": (SAGAN_G, lambda data: data.pop("state_dict"), "no 'state_dict' entry"),
    "D of other classes": (SAGAN_D, lambda data: data["state_dict"].update(
        {"embedding.weight_orig": torch.randn(5, 16), "embedding.weight_u": torch.randn(5)}),
        "it has 5 classes, the generator 10"),
    "a classifier head on D": (SAGAN_D, set_item("linear1.weight_orig", torch.randn(11, 16)), "AC, 2C, D2DCE, MH"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_file_named_like_studiogans_that_does_not_fit_is_refused_saying_why(tmp_path, case):
    source, change, reason = BROKEN[case]
    broken = rewrite(tmp_path, source, change)
    what = "discriminator" if source == SAGAN_D else "generator"
    with pytest.raises(CheckpointError) as refused:
        studiogan.open_model(broken, CPU)
    message = str(refused.value)
    assert message.startswith(f"{broken}: looks like a StudioGAN {what} checkpoint, but "), message
    assert re.search(reason, message), message


def test_truncated_files_and_foreign_pickles_are_refused_without_running_them(tmp_path):
    truncated = tmp_path / "a" / SAGAN_G.name
    truncated.parent.mkdir()
    truncated.write_bytes(SAGAN_G.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"looks like a StudioGAN generator checkpoint, but it is not a weights-only"):
        studiogan.open_model(truncated, CPU)
    foreign = tmp_path / "b" / SAGAN_G.name
    foreign.parent.mkdir()
    torch.save({"state_dict": read(SAGAN_G)["state_dict"], "extra": np.random.default_rng(0)}, foreign)
    with pytest.raises(CheckpointError, match="not a weights-only PyTorch file"):
        studiogan.open_model(foreign, CPU)


def test_a_generator_and_ema_generator_of_different_architectures_are_refused(tmp_path):
    def drop_attention(data):
        state = data["state_dict"]
        for key in [key for key in state if key.startswith("blocks.")]:
            index = int(key.split(".")[1])
            if index == 1:
                state.pop(key)
            elif index > 1:
                state[key.replace(f"blocks.{index}.", f"blocks.{index - 1}.", 1)] = state.pop(key)
    ema = rewrite(tmp_path, BIGGAN["G_ema"], drop_attention)
    with pytest.raises(CheckpointError, match="its architecture differs from model=G_ema"):
        studiogan.open_model(ema, CPU)

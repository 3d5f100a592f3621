"""heykeetae/Self-Attention-GAN checkpoints, held to the outputs of their own code (tests/fixtures/heykeetae)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from sagan_viz import families
from sagan_viz.checkpoint import CheckpointError
from sagan_viz.families import heykeetae
from sagan_viz.families.heykeetae_networks import iterated_sigma
from sagan_viz.families.state_files import spectral_sigma

FIXTURE = Path(__file__).parent / "fixtures" / "heykeetae"
GENERATOR, DISCRIMINATOR = FIXTURE / "1000_G.pth", FIXTURE / "1000_D.pth"


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURE / "reference_outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return heykeetae.open_model(GENERATOR, torch.device("cpu"))


def their_state(path: Path = GENERATOR) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_a_step_file_opens_with_both_networks_their_grids_and_what_it_lacks(model):
    assert (model.family, model.resolution, model.z_dim, model.conv_dim, model.step) == ("heykeetae", 64, 16, 8, 1000)
    assert model.weight_choices == ("raw", "train-bn") and model.discriminator is not None and not model.conditional
    grids = [(info.name, info.query_shape, info.key_shape) for info in model.attention_layers()]
    assert grids == [("G.attn0", (16, 16), (16, 16)), ("G.attn1", (32, 32), (32, 32)),
                     ("D.attn0", (8, 8), (8, 8)), ("D.attn1", (4, 4), (4, 4))]  # full-resolution keys (paper layer)
    report = model.report()
    for words in ("heykeetae", "64×64", "one power iteration", "running statistics", "train-bn", "no EMA-G",
                  "training history", "G.attn1 (32×32 queries"):
        assert words in report
    summary = heykeetae.summarise(GENERATOR)
    assert (summary.step, summary.resolution, summary.weight_choices) == (1000, 64, ("raw", "train-bn"))
    assert summary.layers == ("G.attn0", "G.attn1", "D.attn0", "D.attn1") and summary.truncation is None


@pytest.mark.parametrize("index", [0, 1])
def test_eval_mode_image_beta_and_score_are_what_their_code_gives(model, reference, index):
    generation = model.generate(z=reference["z"][index], weights="raw")
    expected = reference["eval_images"][index]
    assert (generation.image_tensor[0] - expected).abs().max() <= 1e-4
    assert expected.std() > 0.1 and expected.abs().max() < 0.95  # neither flat nor saturated
    for layer, rows in (("G.attn0", reference["rows_attn0"]), ("G.attn1", reference["rows_attn1"])):
        beta = generation.attention[layer]
        theirs = reference[f"eval_attn{layer[-1]}"][index]
        assert (beta[rows] - theirs).abs().max() <= 1e-5
        assert theirs.max() > 5 / beta.shape[1]  # peaked rows: a uniform β would not test the orientation
    for layer in ("D.attn0", "D.attn1"):
        assert (generation.attention[layer] - reference[f"eval_d_{layer[2:]}"][index]).abs().max() <= 1e-5
    torch.testing.assert_close(torch.tensor(generation.discriminator_score), reference["eval_scores"][index],
                               rtol=1e-5, atol=1e-5)


def test_train_bn_normalises_with_the_batch_their_trainer_samples(model, reference):
    generation = model.generate(z=reference["z"][0], weights="train-bn")
    assert (generation.image_tensor[0] - reference["train_image"][0]).abs().max() <= 1e-4
    assert (generation.attention["G.attn0"][reference["rows_attn0"]] - reference["train_attn0"][0]).abs().max() <= 1e-5
    assert (generation.attention["G.attn1"][reference["rows_attn1"]] - reference["train_attn1"][0]).abs().max() <= 1e-5
    assert (reference["train_image"][0] - reference["eval_images"][0]).abs().max() > 0.05  # the modes differ
    with torch.no_grad():  # a batch of two: each image with its own 63 companions, not with the other image
        pair = model.run_generator(model.generators["train-bn"], reference["z"], None, None)
        alone = model.run_generator(model.generators["train-bn"], reference["z"][1:], None, None)
    torch.testing.assert_close(pair[1:], alone, atol=1e-6, rtol=0)


def test_the_fixture_needs_the_power_iteration_their_forward_runs():
    state = their_state()
    weight, u, v = (state[f"l2.0.module.{name}"] for name in ("weight_bar", "weight_u", "weight_v"))
    iterated, stored = iterated_sigma(weight, u), spectral_sigma(weight, u, v)
    assert (iterated - stored).abs() > 0.05 * iterated  # folding with the stored u, v alone would be wrong
    matrix = weight.reshape(weight.shape[0], -1)  # (in, out * 16) for their ConvTranspose2d, not torch's dim 1
    assert iterated <= torch.linalg.matrix_norm(matrix, ord=2) + 1e-5


def test_a_data_parallel_file_without_discriminator_opens_with_the_generator_only(tmp_path, reference):
    path = tmp_path / "run" / "500_G.pth"
    path.parent.mkdir()
    torch.save({f"module.{key}": value for key, value in their_state().items()}, path)
    model = heykeetae.open_model(path, torch.device("cpu"))
    assert model.discriminator is None and model.step == 500 and model.attention_layer_names() == ["G.attn0", "G.attn1"]
    assert "no discriminator" in model.report()
    generation = model.generate(z=reference["z"][0], weights="raw")
    assert generation.discriminator_score is None
    assert (generation.image_tensor[0] - reference["eval_images"][0]).abs().max() <= 1e-4
    assert heykeetae.summarise(path).layers == ("G.attn0", "G.attn1")


def broken_copies(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files that look like theirs but do not fit -> (path to open, what the error must say)."""
    cases = {}

    def save(name: str, change, source: Path = GENERATOR, file_name: str = "1000_G.pth") -> Path:
        (folder / name).mkdir()
        state = their_state(source)
        change(state)
        torch.save(state, folder / name / file_name)
        return folder / name / file_name

    cases["shape"] = (save("shape", lambda s: s.update({"l2.0.module.weight_bar": s["l2.0.module.weight_bar"][:, :8]})),
                      r"l2\.0\.module\.(weight_bar|bias).* has shape")
    cases["missing"] = (save("missing", lambda s: s.pop("attn1.gamma")), r"missing \['attn1.gamma'\]")
    cases["nan"] = (save("nan", lambda s: s["l3.1.running_var"].__setitem__(0, float("nan"))),
                    r"l3\.1\.running_var holds NaN")
    cases["zero_u"] = (save("zero_u", lambda s: s["l1.0.module.weight_u"].zero_()), r"weight_u gives sigma 0")
    cases["narrow"] = (save("narrow", lambda s: s.update({"l1.0.module.weight_bar": torch.zeros(16, 32, 4, 4)})),
                       r"conv_dim 4 .*out of range")
    cases["unrelated"] = (save("unrelated", lambda s: [s.clear(), s.update({"fc.weight": torch.ones(2, 2)})]),
                          r"no weight_bar keys")
    cases["discriminator"] = (save("discriminator", lambda s: None, DISCRIMINATOR, "1000_D.pth"),
                              r"their discriminator; open the generator \(1000_G.pth beside it\)")
    (folder / "truncated").mkdir()
    (folder / "truncated" / "1000_G.pth").write_bytes(GENERATOR.read_bytes()[:5000])
    cases["truncated"] = (folder / "truncated" / "1000_G.pth", r"not a weights-only PyTorch file")
    bad_d = save("bad_d", lambda s: None)
    torch.save({**their_state(DISCRIMINATOR), "attn2.gamma": torch.ones(2)}, bad_d.with_name("1000_D.pth"))
    cases["bad_d"] = (bad_d.with_name("1000_D.pth"), r"attn2\.gamma has shape \(2,\)")
    return cases


def test_files_that_look_like_theirs_but_do_not_fit_are_refused_saying_why(tmp_path):
    for case, (path, problem) in broken_copies(tmp_path).items():
        assert heykeetae.claims(path), case
        opened = path if case != "bad_d" else path.with_name("1000_G.pth")
        with pytest.raises(CheckpointError, match=rf"^{path}: looks like a heykeetae/Self-Attention-GAN state dict.*, "
                                                  rf"but .*{problem}") as error:
            heykeetae.open_model(opened, torch.device("cpu"))
        assert "\n" not in str(error.value), case


def test_claims_their_files_by_name_or_keys_and_nothing_else(tmp_path):
    assert heykeetae.claims(GENERATOR) and heykeetae.claims(DISCRIMINATOR)
    renamed = tmp_path / "weights.pth"
    shutil.copy(GENERATOR, renamed)
    assert heykeetae.claims(renamed) and heykeetae.summarise(renamed).step is None
    torch.save({"blocks.0.0.conv1.weight": torch.ones(1), "linear.u0": torch.ones(1, 1)}, tmp_path / "G.pth")
    (tmp_path / "garbage.pth").write_bytes(b"junk")
    (tmp_path / "model.safetensors").write_bytes(b"{}")
    for path in (tmp_path / "G.pth", tmp_path / "garbage.pth", tmp_path / "model.safetensors", tmp_path, tmp_path / "none"):
        assert not heykeetae.claims(path), path


@pytest.mark.skipif(heykeetae not in families.FAMILIES, reason="families/__init__.py does not register heykeetae yet")
def test_the_registry_opens_their_files(reference):
    model = families.load_checkpoint(GENERATOR, device="cpu")
    assert model.family == "heykeetae" and families.summarise_checkpoint(GENERATOR).step == 1000
    generation = model.generate(z=reference["z"][1], weights="raw")
    assert (generation.image_tensor[0] - reference["eval_images"][1]).abs().max() <= 1e-4
    with pytest.raises(CheckpointError, match="their discriminator"):
        families.load_checkpoint(DISCRIMINATOR)

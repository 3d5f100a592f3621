"""ajbrock/BigGAN-PyTorch runs, held to the outputs of their own code (tests/fixtures/biggan_pytorch)."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from sagan_viz import families
from sagan_viz.checkpoint import CheckpointError
from sagan_viz.families import biggan_pytorch
from sagan_viz.families.biggan_pytorch_layout import eval_sigma, read_run_state

FIXTURE = Path(__file__).parent / "fixtures" / "biggan_pytorch"
HIER, PLAIN = FIXTURE / "hier", FIXTURE / "plain"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def hier():
    return biggan_pytorch.open_model(HIER / "G_ema.pth", CPU), torch.load(HIER / "reference_outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def plain():
    return biggan_pytorch.open_model(PLAIN / "G_copy0.pth", CPU), torch.load(PLAIN / "reference_outputs.pt",
                                                                            weights_only=True)


def grids(model) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    return [(info.name, info.query_shape, info.key_shape) for info in model.attention_layers()]


def test_a_hier_run_opens_with_ema_raw_and_d_its_grids_and_step(hier):
    model, _ = hier
    assert (model.family, model.resolution, model.num_classes, model.z_dim, model.step) == ("biggan-pytorch", 64, 7, 20, 1234)
    assert model.weight_choices == ("ema", "raw") and model.discriminator is not None
    assert model.config.hier and model.config.shared_dim == 8 and model.config.z_chunk == 4
    assert grids(model) == [("G.attn0", (16, 16), (8, 8)), ("G.attn1", (32, 32), (16, 16)), ("D.attn0", (8, 8), (4, 4))]
    report = model.report()
    for words in ("biggan-pytorch", "64×64", "7 classes", "5 chunks of 4 (hier)", "u0", "eval mode", "BN_eps 1e-05",
                  "training history", "G.attn1 (32×32 queries over 16×16 pooled keys)"):
        assert words in report
    summary = biggan_pytorch.summarise(HIER / "G_ema.pth")
    assert (summary.step, summary.resolution, summary.num_classes, summary.weight_choices) == (1234, 64, 7, ("ema", "raw"))
    assert summary.layers == ("G.attn0", "G.attn1", "D.attn0") and summary.truncation.default == 1.0


def compare(model, reference, weights: str, index: int) -> None:
    """Image, every layer's β and D's score of one fixed (z, class) against their code's."""
    generation = model.generate(z=reference["z"][index], label=int(reference["y"][index]), weights=weights,
                                truncation=1.0)
    expected = reference[f"{weights}_images"][index]
    assert (generation.image_tensor[0] - expected).abs().max() <= 1e-4
    assert expected.std() > 0.1 and (expected.abs() > 0.95).float().mean() < 0.02  # neither flat nor saturated
    assert set(generation.attention) == set(model.attention_layer_names())
    for layer in generation.attention:
        rows, theirs = reference[f"{weights}_{layer}_rows"], reference[f"{weights}_{layer}"][index]
        assert (generation.attention[layer][rows] - theirs).abs().max() <= 1e-5, layer
        assert (theirs.amax(dim=1) - theirs.amin(dim=1)).min() > 100 * 1e-5, layer  # rows far from uniform
    torch.testing.assert_close(torch.tensor(generation.discriminator_score), reference[f"{weights}_D_scores"][index],
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("weights", ["ema", "raw"])
@pytest.mark.parametrize("index", [0, 1])
def test_hier_images_beta_and_scores_are_what_their_code_gives(hier, weights, index):
    compare(*hier, weights, index)


@pytest.mark.parametrize("index", [0, 1])
def test_per_class_norms_mybn_and_two_svs_give_what_their_code_gives(plain, index):
    compare(*plain, "raw", index)


def test_a_run_without_ema_or_state_dict_says_what_it_lacks(plain):
    model, _ = plain
    assert model.weight_choices == ("raw",) and model.step is None and model.config.shared_dim == 0
    assert not model.discriminator.config.wide
    # D_attn 16 on the 32x32 arch: all four blocks are labelled 16, the maps are 16, 8, 8, 8
    assert grids(model) == [("G.attn0", (16, 16), (8, 8)), ("D.attn0", (16, 16), (8, 8)), ("D.attn1", (8, 8), (4, 4)),
                            ("D.attn2", (8, 8), (4, 4)), ("D.attn3", (8, 8), (4, 4))]
    report = model.report()
    assert "EMA-G (no G_ema.pth)" in report and "no step, BN_eps taken as 1e-5" in report
    assert "per-class batch-norm embeddings" in report


def test_the_fixture_needs_the_power_iteration_their_eval_forward_runs():
    state = torch.load(HIER / "G_ema.pth", weights_only=True)
    weight, u = state["blocks.0.0.conv1.weight"], state["blocks.0.0.conv1.u0"]
    matrix = weight.reshape(weight.shape[0], -1)
    without_iteration = torch.linalg.vector_norm(u @ matrix)  # |u0 W|: sigma if u0 were taken as converged
    assert (eval_sigma(weight, u) - without_iteration).abs() > 0.01 * eval_sigma(weight, u)  # 100x the image tolerance
    assert eval_sigma(weight, u) <= torch.linalg.matrix_norm(matrix, ord=2) + 1e-5


def test_the_folder_and_each_generator_file_open_the_same_run(hier):
    model, reference = hier
    for path in (HIER, HIER / "G.pth"):
        other = biggan_pytorch.open_model(path, CPU)
        assert other.weight_choices == ("ema", "raw") and other.step == 1234
        z, label = reference["z"][:1], int(reference["y"][0])
        assert torch.equal(other.generate(z=z, label=label).image_tensor, model.generate(z=z, label=label).image_tensor)
    with pytest.raises(CheckpointError, match=r"D\.pth: looks like .* their discriminator; open G_ema\.pth or G\.pth"):
        biggan_pytorch.open_model(HIER / "D.pth", CPU)


def test_truncation_scales_the_standard_deviation_of_z(hier):
    model, _ = hier
    assert model.generate(seed=3).truncation == 1.0
    torch.testing.assert_close(model.generate(seed=3, truncation=0.5).z, 0.5 * model.generate(seed=3).z)
    with pytest.raises(ValueError, match="truncation"):
        model.generate(seed=3, truncation=1.5)
    with pytest.raises(ValueError, match="label 7"):
        model.generate(seed=3, label=7)


class Payload:
    """A pickle that would create a file if anything executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_state_dict_files_are_read_without_running_what_they_pickle(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"itr": 7, "config": {"BN_eps": 1e-4, "G_activation": Payload(marker)}}, tmp_path / "zip.pth")
    torch.save({"itr": 8, "config": {"norm_style": "bn"}}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert read_run_state(tmp_path / "zip.pth")["itr"] == 7 and not marker.exists()
    assert read_run_state(tmp_path / "legacy.pth")["config"] == {"norm_style": "bn"}
    with pytest.raises(pickle.UnpicklingError):  # what torch's weights-only loading says of their file
        torch.load(HIER / "state_dict.pth", weights_only=True)
    assert read_run_state(HIER / "state_dict.pth")["config"]["G_attn"] == "16_32"


def copy_run(folder: Path, change=None, file_name: str = "G_ema.pth", state_dict: dict | None = None) -> Path:
    """The hier run in folder, one file's state changed (or a state_dict.pth written); returns G_ema.pth's path."""
    shutil.copytree(HIER, folder)
    if change is not None:
        state = torch.load(folder / file_name, weights_only=True)
        change(state)
        torch.save(state, folder / file_name)
    if state_dict is not None:
        torch.save(state_dict, folder / "state_dict.pth")
    return folder / "G_ema.pth"


def nan_in(key: str):
    return lambda state: state[key].view(-1).__setitem__(0, float("nan"))


BROKEN = {  # case -> (how the run is changed, the file the error names, what it says)
    "shape": (dict(change=lambda s: s.update({"blocks.1.0.conv1.weight": s["blocks.1.0.conv1.weight"][:, :8]})),
              "G_ema.pth", r"blocks\.1\.0\.conv1\.weight has shape \(16, 8, 3, 3\)"),
    "missing": (dict(change=lambda s: s.pop("blocks.1.1.gamma")), "G_ema.pth", r"missing \['blocks\.1\.1\.gamma'\]"),
    "nan": (dict(change=nan_in("blocks.2.0.bn2.stored_var")), "G_ema.pth", r"stored_var holds NaN"),
    "zero_u": (dict(change=lambda s: s["linear.u0"].zero_()), "G_ema.pth", r"linear\.u0 gives sigma 0"),
    "blocks": (dict(change=lambda s: [s.pop(k) for k in list(s) if k.startswith("blocks.3.")]), "G_ema.pth",
               r"linear\.weight has shape \(512, 4\), where the other weights imply \(128, 4\)"),  # read as 32px
    "deep": (dict(change=lambda s: s.update({"blocks.0.0.conv3.weight": torch.ones(1)})), "G_ema.pth", r"BigGANdeep"),
    "cross_replica": (dict(change=lambda s: s.update({"blocks.0.0.bn1.bn.running_mean": torch.ones(32)})),
                      "G_ema.pth", r"cross_replica"),
    "unrelated": (dict(change=lambda s: [s.clear(), s.update({"fc.weight": torch.ones(2, 2)})]), "G_ema.pth",
                  r"0 generator blocks"),
    "mismatch": (dict(change=lambda s: [s.pop(k) for k in list(s) if k.startswith("blocks.2.1.")], file_name="G.pth"),
                 "G.pth", r"does not fit G_ema\.pth"),
    "d_classes": (dict(change=lambda s: s.update({"embed.weight": s["embed.weight"][:5], "embed.u0": s["embed.u0"][:, :5]}),
                       file_name="D.pth"), "D.pth", r"5 classes, its generator for 64px and 7"),
    "d_nan": (dict(change=nan_in("linear.weight"), file_name="D.pth"), "D.pth", r"linear\.weight holds NaN"),
    "norm_style": (dict(state_dict={"itr": 3, "config": {"norm_style": "gn"}}), "state_dict.pth", r"norm_style 'gn'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_runs_that_look_like_theirs_but_do_not_fit_are_refused_saying_why(tmp_path, case):
    change, named, problem = BROKEN[case]
    path = copy_run(tmp_path / case, **change)
    assert biggan_pytorch.claims(path)
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / case / named}: looks like a BigGAN-PyTorch .*, but .*{problem}"):
        biggan_pytorch.open_model(path, CPU)


def test_truncated_and_damaged_files_are_refused_naming_them(tmp_path):
    path = copy_run(tmp_path / "truncated")
    path.write_bytes((HIER / "G_ema.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=rf"^{path}: looks like .*, but not a weights-only PyTorch file"):
        biggan_pytorch.open_model(path, CPU)
    damaged = copy_run(tmp_path / "damaged").with_name("state_dict.pth")
    damaged.write_bytes(damaged.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=rf"^{damaged}: looks like BigGAN-PyTorch's state_dict.pth, but it is not"):
        biggan_pytorch.summarise(damaged.with_name("G.pth"))


def test_claims_their_runs_by_name_or_keys_and_nothing_else(tmp_path):
    assert biggan_pytorch.claims(HIER) and biggan_pytorch.claims(HIER / "G_ema.pth") and biggan_pytorch.claims(PLAIN / "D_copy0.pth")
    converted = tmp_path / "biggan-128.pth"  # the TF Hub converter's name: a generator alone, keys decide
    shutil.copy(PLAIN / "G_copy0.pth", converted)
    assert biggan_pytorch.claims(converted) and biggan_pytorch.summarise(converted).weight_choices == ("raw",)
    torch.save({}, tmp_path / "G_optim.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    heykeetae_file = FIXTURE.parent / "heykeetae" / "1000_G.pth"
    for path in (tmp_path / "G_optim.pth", tmp_path / "junk.pth", heykeetae_file, tmp_path, tmp_path / "x.safetensors"):
        assert not biggan_pytorch.claims(path), path


@pytest.mark.skipif(biggan_pytorch not in families.FAMILIES, reason="families/__init__.py does not register it yet")
def test_the_registry_opens_their_runs(hier):
    model, reference = hier
    opened = families.load_checkpoint(HIER / "G_ema.pth", device="cpu")
    assert opened.family == "biggan-pytorch" and families.summarise_checkpoint(HIER).step == 1234
    z, label = reference["z"][1:], int(reference["y"][1])
    assert (opened.generate(z=z, label=label).image_tensor[0] - reference["ema_images"][1]).abs().max() <= 1e-4
    assert families.family_for(PLAIN / "G_copy0.pth") is biggan_pytorch

"""mmgeneration SAGAN checkpoints, held to the outputs of mmgeneration's own code (tests/fixtures/mmgen)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sagan_viz.checkpoint import CheckpointError
from sagan_viz.families import mmgen

FIXTURE = Path(__file__).parent / "fixtures" / "mmgen"
SCHEDULE = FIXTURE / "sagan_biggan_schedule.pth"  # EMA, BN eps 1e-5, BigGAN init, plain cBN embeddings
INPLACE = FIXTURE / "sagan_cifar_inplace.pth"  # no EMA, in-place ReLU, studio init, spectral-norm cBN embeddings
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


@pytest.fixture(scope="module")
def models() -> dict:
    return {path.stem: mmgen.open_model(path, CPU) for path in (SCHEDULE, INPLACE)}


def grids(model) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    return [(info.name, info.query_shape, info.key_shape) for info in model.attention_layers()]


def test_a_checkpoint_opens_its_generators_and_discriminator_with_their_grids(models):
    schedule, inplace = models["sagan_biggan_schedule"], models["sagan_cifar_inplace"]
    assert (schedule.family, schedule.resolution, schedule.num_classes, schedule.z_dim) == ("mmgen", 32, 10, 24)
    assert schedule.weight_choices == ("ema", "raw") and inplace.weight_choices == ("raw",)
    assert (schedule.step, inplace.step) == (826000, 460000) and schedule.discriminator is not None
    assert grids(schedule) == [("G.attn0", (8, 8), (4, 4)), ("D.attn0", (16, 16), (8, 8))]
    assert grids(inplace) == [("G.attn0", (16, 16), (8, 8)), ("D.attn0", (16, 16), (8, 8))]
    report = schedule.report()
    for words in ("mmgen", "32×32", "10 classes", "G.attn0 (8×8 queries over 4×4 keys)", "iteration 826000",
                  "Holds generator_ema, generator, discriminator", "no training history", "stored u, v",
                  "read from the file's meta config", "BN eps 1e-05", "1 + embedding", "in-place ReLU in D no"):
        assert words in report
    assert "no generator_ema" in inplace.report() and "in-place ReLU in D yes" in inplace.report()
    summary = mmgen.summarise(SCHEDULE)
    assert (summary.family, summary.step, summary.weight_choices, summary.layers) == (
        "mmgen", 826000, ("ema", "raw"), ("G.attn0", "D.attn0"))


@pytest.mark.parametrize("name, weights", [("sagan_biggan_schedule", "ema"), ("sagan_biggan_schedule", "raw"),
                                           ("sagan_cifar_inplace", "raw")])
@pytest.mark.parametrize("index", [0, 1])
def test_image_score_and_beta_are_what_mmgen_gives_in_eval_mode(models, expected, name, weights, index):
    theirs = expected[name]
    generation = models[name].generate(z=theirs["noise"][index], label=int(theirs["labels"][index]), weights=weights)
    image = theirs[weights]["images"][index]
    assert (generation.image_tensor[0] - image).abs().max() <= 1e-4
    assert image.std() > 0.1 and (image.abs() > 0.99).float().mean() < 0.01  # neither flat nor saturated
    score = theirs[weights]["scores"][index].item()
    assert abs(generation.discriminator_score - score) <= 1e-4 * max(1.0, abs(score))
    if index == 0:  # β of the first sample: the tensor mmgen's SelfAttentionBlock passed through F.softmax
        for layer, beta in theirs[weights]["beta"].items():
            assert (generation.attention[layer] - beta).abs().max() <= 1e-5, layer
        peaked = theirs[weights]["beta"]["G.attn0"]
        assert peaked.max(dim=1).values.mean() > 2 / peaked.shape[1]  # G's rows are not uniform: orientation matters


def rewrite(tmp_path: Path, source: Path, change, name: str | None = None) -> Path:
    data = torch.load(source, weights_only=True)
    change(data)
    path = tmp_path / (name or source.name)
    torch.save(data, path)
    return path


def test_without_a_meta_config_mmgens_defaults_are_assumed(tmp_path, expected):
    bare = rewrite(tmp_path, SCHEDULE, lambda data: data["meta"].pop("config"))
    model = mmgen.open_model(bare, CPU)
    assert "mmgen's defaults" in model.report() and "BN eps 0.0001" in model.report()
    theirs = expected["sagan_biggan_schedule"]
    image = model.generate(z=theirs["noise"][0], label=3, weights="raw").image_tensor[0]
    assert (image - theirs["raw"]["images"][0]).abs().max() > 1e-4  # the config's BN eps (1e-5) mattered


def test_the_config_text_is_parsed_never_run(tmp_path):
    marker = tmp_path / "ran"
    text = f"import os\nmodel = dict(generator=dict(norm_eps=__import__('os').system('touch {marker}')))\n"
    hostile = rewrite(tmp_path, SCHEDULE, lambda data: data["meta"].__setitem__("config", text))
    with pytest.raises(CheckpointError, match="norm_eps None"):
        mmgen.open_model(hostile, CPU)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the junk file's first bytes
def test_claims_mmgen_files_and_nothing_else(tmp_path):
    assert mmgen.claims(SCHEDULE) and mmgen.claims(INPLACE)
    ours = tmp_path / "step_0000100.safetensors"
    save_file({"generator.x": torch.zeros(1)}, ours)
    deep = tmp_path / "biggan-deep-128"
    deep.mkdir()
    (deep / "pytorch_model.bin").write_bytes(b"")
    bare = tmp_path / "100_G.pth"  # heykeetae: a bare state dict with weight_bar keys
    torch.save({"l1.0.weight_bar": torch.zeros(2), "l1.0.weight_u": torch.zeros(2)}, bare)
    lightning = tmp_path / "last.pt"  # a state dict with generator.* keys, but no mmcv meta
    torch.save({"state_dict": {"generator.fc.weight": torch.zeros(2)}, "epoch": 3}, lightning)
    studio = FIXTURE.parent / "studiogan" / "biggan"
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x04junk")
    for path in (ours, deep, bare, lightning, junk, *studio.glob("*.pth"), tmp_path / "missing.pth"):
        assert not mmgen.claims(path), path


def set_key(key, value):
    return lambda data: data["state_dict"].__setitem__(key, value)


def set_config(old: str, new: str):
    def change(data):
        assert old in data["meta"]["config"]
        data["meta"]["config"] = data["meta"]["config"].replace(old, new)
    return change


def change_nan(data):
    data["state_dict"]["generator_ema.noise2feat.weight_orig"][0, 0] = float("nan")


def to_ajbrock(data):
    state = data["state_dict"]
    state["generator.conv_blocks.1.theta.conv.u0"] = state.pop("generator.conv_blocks.1.theta.conv.weight_u")


BROKEN = {
    "a NaN": (change_nan, "generator_ema.noise2feat.weight_orig holds NaN"),
    "a key missing": (lambda data: data["state_dict"].pop("generator.to_rgb.bn.running_var"),
                      r"missing \['generator.to_rgb.bn.running_var'\]"),
    "a wrong shape": (set_key("discriminator.conv_blocks.0.gamma", torch.zeros(2)),
                      r"discriminator.conv_blocks.0.gamma has shape \(2,\), the architecture needs \(1,\)"),
    "a u of the wrong length": (set_key("generator.to_rgb.conv.weight_u", torch.ones(5)), "has no u of"),
    "ajbrock spectral norm": (to_ajbrock, "ajbrock-style spectral norm"),
    "an unrelated state dict": (lambda data: data.__setitem__("state_dict", {"generator.fc.weight": torch.ones(2, 2)}),
                                "no noise2feat layer"),
    "no generator": (lambda data: data.__setitem__("state_dict", {"discriminator.fc.weight": torch.ones(2)}),
                     "no generator.* or generator_ema.* weights"),
    "a LeakyReLU": (set_config("type='ReLU', inplace=True", "type='LeakyReLU'"), "only ReLU is supported"),
    "an unknown down-sampling": (set_config("input_scale=32,", "input_scale=32, downsample_cfg=[True, True],"),
                                 r"3 residual blocks; the down-sampling for 32px is \(True, True\)"),
    "D of other classes": (lambda data: data["state_dict"].update({
        "discriminator.proj_y.weight_orig": torch.randn(4, 16), "discriminator.proj_y.weight_u": torch.randn(4)}),
        "its discriminator has 4 classes, its generator 10"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_file_that_looks_like_mmgens_but_does_not_fit_is_refused_saying_why(tmp_path, case):
    change, reason = BROKEN[case]
    source = INPLACE if case in ("a LeakyReLU", "an unknown down-sampling") else SCHEDULE
    broken = rewrite(tmp_path, source, change)
    with pytest.raises(CheckpointError) as refused:
        mmgen.open_model(broken, CPU)
    message = str(refused.value)
    assert message.startswith(f"{broken}: looks like an mmgeneration SAGAN checkpoint, but "), message
    assert re.search(reason, message), message


def test_a_truncated_file_is_refused_saying_it_cannot_be_read(tmp_path):
    truncated = tmp_path / "sagan.pth"
    truncated.write_bytes(SCHEDULE.read_bytes()[:5000])
    assert not mmgen.claims(truncated)
    with pytest.raises(CheckpointError, match=r"looks like an mmgeneration SAGAN checkpoint, but it is not a weights"):
        mmgen.open_model(truncated, CPU)

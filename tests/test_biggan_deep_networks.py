"""BigGAN-deep in pytorch-pretrained-biggan's layout, held against the package's own code on tiny random models."""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from biggan_reference import make_biggan_reference as make_reference
from biggan_reference import save_biggan_reference as save_reference
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from pytorch_pretrained_biggan.model import BigGANBatchNorm, SelfAttn

from sagan_viz.attention import SelfAttention
from sagan_viz.checkpoint import CheckpointError
from sagan_viz.config import ConfigError
from sagan_viz.families import biggan_deep_networks as deep
from sagan_viz.families.biggan_deep_networks import (
    BigGANDeepConfig,
    TruncationNorm,
    build_biggan_deep,
    find_biggan_deep_files,
    folding_report,
    read_biggan_deep,
)

# Attention before block 3 on a 16x16 map; 51 rows of statistics as in the released models.
TINY = dict(output_dim=32, z_dim=8, class_embed_dim=8, channel_width=8, num_classes=5, eps=1e-4, n_stats=51,
            layers=[(False, 16, 16), (True, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)],
            attention_layer_position=3)
# Attention before block 2 on an 8x8 map; only 5 rows of statistics, so most truncations interpolate.
FEW_STATS = dict(output_dim=64, z_dim=16, class_embed_dim=16, channel_width=4, num_classes=10, eps=1e-4, n_stats=5,
                 layers=[(True, 16, 8), (False, 8, 8), (True, 8, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
                 attention_layer_position=2)
TRUNCATIONS = (0.4, 0.5, 1.0, 0.33, 0.58, 0.07)


@pytest.fixture(scope="module", params=[TINY, FEW_STATS], ids=["tiny", "few_stats"])
def reference(request, tmp_path_factory):
    """(the package's model in eval mode, the folder it was saved to)."""
    model = make_reference(request.param)
    folder = save_reference(model, tmp_path_factory.mktemp("biggan"))
    return model.eval(), folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return save_reference(make_reference(TINY, seed=1), tmp_path_factory.mktemp("tiny"))


def inputs(config: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(3, config["z_dim"], generator=generator)
    classes = torch.eye(config["num_classes"])[torch.randint(config["num_classes"], (3,), generator=generator)]
    return z, classes


def load(folder: Path):
    config, state = read_biggan_deep(folder)
    return build_biggan_deep(config, state)


@torch.no_grad()
def test_folded_generator_matches_package_in_eval_mode(reference):
    model, folder = reference
    ours = load(folder)
    settings = model.config.to_dict()
    for seed, truncation in enumerate(TRUNCATIONS):
        z, classes = inputs(settings, seed)
        expected = model(z, classes, truncation)
        image = ours(z, classes, truncation)
        assert image.shape == (3, 3, settings["output_dim"], settings["output_dim"])
        assert expected.std() > 0.1 and expected.abs().max() < 0.999  # neither flat nor saturated
        assert (image - expected).abs().max() <= 1e-4, truncation


@torch.no_grad()
def test_folding_uses_stored_u_v_as_package_eval_mode_does(tmp_path):
    model = make_reference(TINY, seed=2)
    for module in model.modules():
        if hasattr(module, "weight_orig"):  # u, v far from converged: sigma is |W v| for a random v
            matrix = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
            module.weight_v.copy_(F.normalize(torch.randn(matrix.shape[1]), dim=0))
            module.weight_u.copy_(F.normalize(matrix @ module.weight_v, dim=0))
    ours = load(save_reference(model, tmp_path))
    z, classes = inputs(TINY, seed=5)
    assert (ours(z, classes, 0.7) - model.eval()(z, classes, 0.7)).abs().max() <= 1e-4


def attention_probabilities_the_package_way(layer: SelfAttn, x: torch.Tensor) -> torch.Tensor:
    """The package's SelfAttn.forward up to its softmax: (B, N, N/4)."""
    batch, channels, height, width = x.shape
    theta = layer.snconv1x1_theta(x).view(batch, channels // 8, height * width)
    phi = layer.maxpool(layer.snconv1x1_phi(x)).view(batch, channels // 8, height * width // 4)
    return torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)


@torch.no_grad()
def test_attention_input_and_beta_match_package(reference):
    model, folder = reference
    ours = load(folder)
    (name, layer), = ours.attention_layers()
    package_layer = next(m for m in model.modules() if isinstance(m, SelfAttn))
    captured = {}
    package_layer.register_forward_hook(lambda m, args, out: captured.setdefault("package", args[0]))
    handle = layer.register_forward_hook(lambda m, args, out: captured.setdefault("ours", args[0]))
    z, classes = inputs(model.config.to_dict(), seed=7)
    model(z, classes, 0.5)
    ours(z, classes, 0.5)
    handle.remove()
    package_layer._forward_hooks.clear()
    side = ours.config.attention_resolution
    assert name == "attn0" and captured["ours"].shape[-2:] == (side, side)
    assert (captured["ours"] - captured["package"]).abs().max() <= 1e-5
    expected = attention_probabilities_the_package_way(package_layer, captured["package"])
    beta = layer.attention_map(captured["ours"])  # (B, N_query, N_key)
    assert beta.shape == (3, side * side, side * side // 4)
    assert expected.max() > 4 / beta.shape[-1]  # peaked, not uniform: the comparison can fail
    assert (beta - expected).abs().max() <= 1e-5


@torch.no_grad()
def test_readme_usage_in_train_mode_matches_when_u_v_converged(tiny_folder):
    # The package's README never calls model.eval(), so its first forward runs one more power iteration
    # before dividing by sigma; with the converged u, v that trained files store, that moves sigma by
    # far less than the tolerance, so our folded (eval-mode) weights match that usage too.
    package = BigGAN.from_pretrained(str(tiny_folder))
    assert package.training
    ours = load(tiny_folder)
    z, classes = inputs(TINY, seed=3)
    assert (ours(z, classes, 0.4) - package(z, classes, 0.4)).abs().max() <= 1e-4


@pytest.mark.parametrize("n_stats", [51, 5, 50])
def test_truncation_statistics_replicate_package_interpolation(n_stats):
    torch.manual_seed(n_stats)
    package = BigGANBatchNorm(6, n_stats=n_stats, eps=1e-4, conditional=False)
    ours = TruncationNorm(6, None, n_stats, 1e-4)
    with torch.no_grad():
        for module in (package, ours):
            module.weight.fill_(1.0), module.bias.fill_(0.0)
        ours.running_means.copy_(package.running_means.normal_())
        ours.running_vars.copy_(package.running_vars.uniform_(0.5, 2))
    x = torch.randn(2, 6, 3, 3)
    for truncation in (0.05, 0.14, 0.33, 0.405, 0.58, 0.94, 1.0):
        if n_stats == 50 and truncation == 1.0:
            continue  # 1.0 / (1 / 49) is just above 49: the package indexes row 50 of 50 and crashes
        assert torch.equal(ours(x, truncation), package(x, truncation)), truncation


def test_truncation_interpolation_weights_are_reversed_as_in_package():
    table = torch.arange(51.0)[:, None]  # row k holds k
    # modf(0.405 / 0.02) = (0.25, 20): row 20 gets 0.25 and row 21 gets 0.75
    assert deep.interpolate_statistics(table, 0.405).item() == pytest.approx(20.75)
    # 0.58 / 0.02 = 28.999...: nearly all weight on row 28 (truncation 0.56), not row 29
    assert deep.interpolate_statistics(table, 0.58).item() == pytest.approx(28.0, abs=1e-5)
    assert deep.interpolate_statistics(torch.arange(50.0)[:, None], 1.0).item() == pytest.approx(49.0)


@pytest.mark.parametrize("truncation", [0.0, -0.1, 1.5, math.nan])
def test_truncation_outside_unit_interval_is_refused(tiny_folder, truncation):
    z, classes = inputs(TINY, seed=0)
    with pytest.raises(ValueError, match="truncation"):
        load(tiny_folder)(z, classes, truncation)


def test_built_generator_is_frozen_float32_eval_with_one_attention_layer(tiny_folder):
    config, state = read_biggan_deep(tiny_folder)
    model = build_biggan_deep(config, state)
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in model.state_dict().values())
    (name, layer), = model.attention_layers()
    assert isinstance(layer, SelfAttention) and layer.variant == "official"
    assert layer.gamma.item() == pytest.approx(0.7)
    assert config.attention_resolution == 16 and config.resolution == 32
    assert "66 layers" in folding_report(config)


def test_folder_bin_and_cache_name_layouts_are_found(tiny_folder, tmp_path):
    assert find_biggan_deep_files(tiny_folder) == (tiny_folder / "config.json", tiny_folder / "pytorch_model.bin")
    bin_path = tmp_path / "beside" / "weights.bin"
    bin_path.parent.mkdir()
    shutil.copy(tiny_folder / "pytorch_model.bin", bin_path)
    shutil.copy(tiny_folder / "config.json", bin_path.with_name("config.json"))
    assert find_biggan_deep_files(bin_path) == (bin_path.with_name("config.json"), bin_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(tiny_folder / "pytorch_model.bin", cache / "biggan-deep-128-pytorch_model.bin")
    shutil.copy(tiny_folder / "config.json", cache / "biggan-deep-128-config.json")
    found = find_biggan_deep_files(cache / "biggan-deep-128-pytorch_model.bin")
    assert found == (cache / "biggan-deep-128-config.json", cache / "biggan-deep-128-pytorch_model.bin")
    for path in (tiny_folder, bin_path, found[1]):
        z, classes = inputs(TINY, seed=0)
        assert load(path)(z, classes, 1.0).shape == (3, 3, 32, 32)


def test_missing_config_or_weights_names_the_path(tiny_folder, tmp_path):
    shutil.copy(tiny_folder / "pytorch_model.bin", tmp_path / "pytorch_model.bin")
    for path in (tmp_path, tmp_path / "pytorch_model.bin"):
        with pytest.raises(CheckpointError, match="config.json") as caught:
            read_biggan_deep(path)
        assert str(path) in str(caught.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=str(empty)):
        read_biggan_deep(empty)
    with pytest.raises(CheckpointError, match="not a folder"):
        read_biggan_deep(tmp_path / "notes.txt")


class Payload:
    """Pickles as a call to os.system: loading it with weights_only=False would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def damaged_state(tiny_folder: Path, damage: str, weights: Path, marker: Path) -> str | None:
    """Write a damaged pytorch_model.bin for one kind of damage; returns the key the error must name."""
    state = torch.load(tiny_folder / "pytorch_model.bin", weights_only=True)
    key = {"missing": "generator.conv_to_rgb.bias", "shape": "generator.layers.1.conv_1.weight_orig",
           "nan": "generator.layers.3.snconv1x1_phi.weight_orig", "negative_var": "generator.bn.running_vars",
           "zero_u": "generator.gen_z.weight_u", "integer": "embeddings.weight",
           "extra": "generator.layers.9.conv_0.weight_orig"}.get(damage)
    if damage == "truncated":
        data = (tiny_folder / "pytorch_model.bin").read_bytes()
        weights.write_bytes(data[: len(data) // 2])
        return None
    if damage in ("payload_zip", "payload_pickle"):
        state["embeddings.weight"] = Payload(marker)
        if damage == "payload_zip":
            torch.save(state, weights)
        else:
            weights.write_bytes(pickle.dumps(state, protocol=2))
        return None
    if damage == "list":
        torch.save(list(state.values()), weights)
        return None
    if damage == "missing":
        del state[key]
    elif damage == "extra":
        state[key] = torch.zeros(2, 2, 1, 1)
    elif damage == "shape":
        state[key] = state[key][:, :, :2, :2].clone()
    elif damage == "nan":
        state[key][0, 0, 0, 0] = math.nan
    elif damage == "negative_var":
        state[key][3, 1] = -0.5
    elif damage == "zero_u":
        state[key].zero_()
    elif damage == "integer":
        state[key] = state[key].to(torch.int64)
    torch.save(state, weights)
    return key


@pytest.mark.parametrize("damage", ["truncated", "payload_zip", "payload_pickle", "list", "missing", "extra",
                                    "shape", "nan", "negative_var", "zero_u", "integer"])
def test_damaged_weights_are_refused_naming_file_and_key(tiny_folder, tmp_path, damage):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_folder / "config.json", folder / "config.json")
    weights, marker = folder / "pytorch_model.bin", tmp_path / "code-ran"
    key = damaged_state(tiny_folder, damage, weights, marker)
    with pytest.raises(CheckpointError) as caught:
        read_biggan_deep(folder)
    assert str(weights) in str(caught.value)
    if key is not None:
        assert key in str(caught.value)
    assert not marker.exists()  # the payload was refused, never executed


def write_config(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**TINY, **changes}))
    (folder / "pytorch_model.bin").write_bytes(b"never read")
    return folder


@pytest.mark.parametrize("changes, field", [
    (dict(channel_width=8.0), "channel_width"),
    (dict(channel_width=1_000_000), "channel_width"),
    (dict(z_dim=True), "z_dim"),
    (dict(output_dim=64), "output_dim"),
    (dict(n_stats=1), "n_stats"),
    (dict(eps=float("nan")), "eps"),
    (dict(attention_layer_position=5), "attention_layer_position"),
    (dict(channel_width=2, attention_layer_position=4), "attention_layer_position"),  # 4 channels: C/8 = 0
    (dict(layers=[(False, 16, 16), (True, 16, 8), (True, 4, 4), (True, 4, 2), (False, 2, 1)]), "layers[2]"),
    (dict(layers=[(False, 16, 16), (1, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)]), "layers[1]"),
    (dict(colour="red"), "colour"),
])
def test_bad_config_is_refused_naming_field_before_weights_are_read(tmp_path, monkeypatch, changes, field):
    def refuse(*args, **kwargs):
        raise AssertionError("weights read before the config was validated")

    monkeypatch.setattr(deep.torch, "load", refuse)
    folder = write_config(tmp_path / "model", **changes)
    with pytest.raises(CheckpointError, match=field.replace("[", r"\[")) as caught:
        read_biggan_deep(folder)
    assert str(folder / "config.json") in str(caught.value)
    assert isinstance(caught.value.__cause__, ConfigError)


def test_config_from_dict_refuses_missing_fields_and_non_objects():
    data = BigGANConfig(**TINY).to_dict()
    assert BigGANDeepConfig.from_dict(data).layers[1] == (True, 16, 8)
    del data["n_stats"]
    with pytest.raises(ConfigError, match="n_stats"):
        BigGANDeepConfig.from_dict(data, source="here")
    with pytest.raises(ConfigError, match="here"):
        BigGANDeepConfig.from_dict([1, 2], source="here")


def test_broken_json_and_oversized_config_name_the_config_file(tmp_path):
    folder = write_config(tmp_path / "model")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON") as caught:
        read_biggan_deep(folder)
    assert str(folder / "config.json") in str(caught.value)
    (folder / "config.json").write_text(" " * (deep.MAX_CONFIG_BYTES + 1))
    with pytest.raises(CheckpointError, match="larger"):
        read_biggan_deep(folder)

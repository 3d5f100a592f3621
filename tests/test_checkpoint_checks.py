"""The loader's checks beyond the format: the shape table, the digest of the tensor data, values that would make
an image non-finite; each refusal names the file."""
import hashlib
import json
import time
from pathlib import Path

import pytest
import torch
from checkpoint_helpers import CONFIG, assert_refused, header_length, outputs, rewrite, save
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sagan_viz.checkpoint import DIGEST_KEY, CheckpointError, build_networks_from, read_checkpoint
from sagan_viz.config import ModelConfig
from sagan_viz.networks import build_networks
from sagan_viz.state_layout import discriminator_layout, generator_layout


@pytest.mark.parametrize("settings", [
    dict(resolution=32, num_classes=0, attention_variant="paper", g_attention=(16,), d_attention=(16,)),
    dict(resolution=32, num_classes=3, attention_variant="official", g_attention=(8, 16, 32), d_attention=(4, 8, 16)),
    dict(resolution=64, num_classes=5, attention_variant="paper", g_attention=(), d_attention=()),
    dict(resolution=64, num_classes=0, attention_variant="official", g_attention=(64,), d_attention=(32,)),
    dict(resolution=128, num_classes=2, attention_variant="paper", g_attention=(8,), d_attention=(4,), image_channels=1),
])
def test_the_shape_table_matches_the_networks_state_dicts_key_for_key(settings):
    config = ModelConfig(g_channels=8, d_channels=16, z_dim=5, **settings)
    generator, discriminator = build_networks(config)
    for network, layout in ((generator, generator_layout(config)), (discriminator, discriminator_layout(config))):
        state = network.state_dict()
        assert list(state) == list(layout)
        for key, tensor in state.items():
            assert (tuple(tensor.shape), tensor.is_floating_point()) == (layout[key].shape, layout[key].floating), key


@pytest.mark.parametrize("field, value, reason", [
    ("resolution", 32.0, "resolution must be an integer, got 32.0 (float)"),
    ("g_channels", 16.5, "g_channels must be an integer, got 16.5"),
    ("g_channels", True, "g_channels must be an integer, got True (bool)"),
    ("z_dim", 10**6, "z_dim must be in 1..4096"),
    ("g_channels", 100_000, "g_channels must be in 1..1024"),
    ("num_classes", 10**9, "num_classes must be in 0..100000"),
    ("g_attention", [16.0], "g_attention must hold integer feature sizes"),
    ("d_attention", [16, 16], "d_attention names a feature size twice"),
    ("attention_variant", 1, "attention_variant must be a string"),
])
def test_a_config_of_the_wrong_type_or_size_is_refused_before_anything_is_built(checkpoint_file, tmp_path, field,
                                                                                 value, reason):
    def change(metadata):
        metadata["model_config"] = json.dumps({**CONFIG.to_dict(), field: value})

    started = time.perf_counter()
    assert_refused(rewrite(checkpoint_file, tmp_path / "config.safetensors", change_metadata=change), reason)
    assert time.perf_counter() - started < 1.0


def test_reading_checks_shapes_without_building_networks_or_moving_the_rng(checkpoint_file, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network was built while reading")

    monkeypatch.setattr("sagan_viz.networks.Generator.__init__", refuse)
    monkeypatch.setattr("sagan_viz.networks.Discriminator.__init__", refuse)
    before = torch.random.get_rng_state()
    read_checkpoint(checkpoint_file)
    assert torch.equal(before, torch.random.get_rng_state())


# --- the digest of the tensor data -------------------------------------------------------------------------------

def data_section(path: Path) -> tuple[int, int]:
    """(first byte of the tensor data, file size)."""
    return 8 + header_length(path), path.stat().st_size


def test_a_saved_checkpoint_carries_the_digest_of_its_tensor_data(checkpoint_file):
    start, _ = data_section(checkpoint_file)
    with safe_open(str(checkpoint_file), framework="pt") as handle:
        stored = handle.metadata()[DIGEST_KEY]
    assert stored == hashlib.sha256(checkpoint_file.read_bytes()[start:]).hexdigest()
    assert read_checkpoint(checkpoint_file).notes == []


@pytest.mark.parametrize("where", [0, 1, 2, 3, 4, 5])
def test_a_single_flipped_bit_in_tensor_data_is_reported_as_damage(checkpoint_file, tmp_path, where):
    start, size = data_section(checkpoint_file)
    damaged = bytearray(checkpoint_file.read_bytes())
    damaged[start + (size - start) * where // 6 + 3] ^= 0x10
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(damaged))
    message = assert_refused(path, "tensor data does not match its digest: the file is damaged")
    assert message == f"{path}: tensor data does not match its digest: the file is damaged"


def without_digest(source: Path, target: Path) -> Path:
    """The file as sagan-viz wrote it before digests: same tensors and metadata, no digest."""
    tensors = load_file(str(source))
    with safe_open(str(source), framework="pt") as handle:
        metadata = {key: value for key, value in handle.metadata().items() if key != DIGEST_KEY}
    save_file(tensors, str(target), metadata=metadata)
    return target


def test_an_older_file_without_a_digest_loads_with_a_note(networks, checkpoint_file, tmp_path):
    old = without_digest(checkpoint_file, tmp_path / "old.safetensors")
    contents = read_checkpoint(old)
    assert len(contents.notes) == 1 and "no digest" in contents.notes[0] and old.name in contents.notes[0]
    for original, restored in zip(outputs(networks), outputs(build_networks_from(contents))):
        assert torch.equal(original, restored)


def test_adding_the_digest_to_an_older_file_changes_nothing_else(checkpoint_file, tmp_path, capsys):
    from training.export import main as export_main

    old = without_digest(checkpoint_file, tmp_path / "old.safetensors")
    before_tensors = load_file(str(old))
    with safe_open(str(old), framework="pt") as handle:
        before_metadata = handle.metadata()
    assert export_main(["--add-digest", str(old)]) == 0
    assert export_main(["--add-digest", str(old)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{old}: digest added", f"{old}: already has its digest"]
    with safe_open(str(old), framework="pt") as handle:
        after_metadata = handle.metadata()
    assert after_metadata == {**before_metadata, DIGEST_KEY: after_metadata[DIGEST_KEY]}
    after_tensors = load_file(str(old))
    assert all(torch.equal(before_tensors[key], after_tensors[key]) for key in before_tensors)
    assert before_tensors.keys() == after_tensors.keys()
    assert read_checkpoint(old).notes == []


def test_adding_a_digest_refuses_a_damaged_file_and_leaves_it_as_it_was(checkpoint_file, tmp_path):
    from training.export import main as export_main

    old = without_digest(checkpoint_file, tmp_path / "old.safetensors")
    rewrite(old, old, change_tensors=lambda tensors: tensors.update(
        {"G.output_norm.running_var": -tensors["G.output_norm.running_var"] - 1}))
    old.write_bytes(without_digest(old, tmp_path / "old2.safetensors").read_bytes())
    before = old.read_bytes()
    with pytest.raises(SystemExit):
        export_main(["--add-digest", str(old)])
    assert old.read_bytes() == before


def test_every_bundled_checkpoint_carries_its_digest():
    bundled = sorted((Path(__file__).resolve().parents[1] / "checkpoints").glob("faces32-*/step_*.safetensors"))
    assert len(bundled) >= 10
    for path in bundled:
        with safe_open(str(path), framework="pt") as handle:
            assert DIGEST_KEY in handle.metadata(), path
        assert read_checkpoint(path).notes == [], path


# --- values that would make an image non-finite --------------------------------------------------------------

@pytest.mark.parametrize("name, make, reason", [
    ("G.linear.parametrizations.weight.0._u", torch.zeros_like, "has norm 0, but spectral norm keeps it a unit vector"),
    ("D.linear.parametrizations.weight.0._v", torch.zeros_like, "has norm 0"),
    ("G.output_norm.running_var", lambda t: -t, "holds negative variances"),
    ("G_ema.stages.0.conv1.parametrizations.weight.original", torch.zeros_like, "the weight is all zero"),
    ("G.output_conv.bias", lambda t: torch.full_like(t, 3e38), "beyond the 1e+04 a trained network reaches"),
    ("D.stages.1.gamma", lambda t: torch.full_like(t, float("nan")), "holds NaN or infinite values"),
])
def test_values_that_make_an_image_non_finite_are_refused(checkpoint_file, tmp_path, name, make, reason):
    def poison(tensors):
        tensors[name] = make(tensors[name])

    message = assert_refused(rewrite(checkpoint_file, tmp_path / "poisoned.safetensors", change_tensors=poison), reason)
    assert name.removesuffix(".parametrizations.weight.original") in message


def test_float16_data_labelled_bfloat16_is_refused(networks, tmp_path):
    half = save(tmp_path / "half.safetensors", networks, half=True)
    raw = half.read_bytes()
    length = header_length(half)
    header = json.loads(raw[8 : 8 + length])
    for name, entry in header.items():
        if name != "__metadata__" and entry["dtype"] == "F16":
            entry["dtype"] = "BF16"
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    relabelled = tmp_path / "bf16.safetensors"
    relabelled.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length :])  # same data: digest matches
    assert_refused(relabelled, "spectral norm keeps it a unit vector", "beyond the 1e+04")


def test_building_refuses_networks_that_produce_non_finite_images(checkpoint_file):
    contents = read_checkpoint(checkpoint_file)
    gamma = contents.state_dicts["G_ema"]["stages.1.gamma"]
    contents.state_dicts["G_ema"]["stages.1.gamma"] = torch.full_like(gamma, 3e38)  # past the value checks
    with pytest.raises(CheckpointError, match="its G_ema produces non-finite values"):
        build_networks_from(contents)

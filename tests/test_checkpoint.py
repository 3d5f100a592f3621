"""The one checkpoint reader and writer: exact round trips, atomic writes, and clear errors for bad files."""
import builtins
import copy
import hashlib
import json
import os
import pickle
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sagan_viz.checkpoint import (
    DIGEST_KEY,
    CheckpointError,
    build_networks_from,
    load_resume_state,
    read_checkpoint,
    resume_state_path,
    save_checkpoint,
    save_resume_state,
    serialise_checkpoint,
    write_atomically,
)
from sagan_viz.config import ModelConfig
from sagan_viz.history import TrainingHistory
from sagan_viz.networks import build_networks
from sagan_viz.state_layout import discriminator_layout, generator_layout

CONFIG = ModelConfig(resolution=32, g_channels=8, d_channels=8, z_dim=16, num_classes=3, g_attention=(8, 16))
HISTORY = {"interval": 1, "step": [0, 1], "loss_D": [None, 1.75], "loss_G": [None, -0.25],
           "gamma": {"G.attn0": [0.0, 1e-4], "G.attn1": [0.0, -1e-4], "D.attn0": [0.0, 3e-4]}}



@pytest.fixture(scope="module")
def networks():
    """(G, G_ema, D) with trained-looking state: moved BN statistics and SN vectors, distinct G and G_ema."""
    torch.manual_seed(0)
    generator, discriminator = build_networks(CONFIG)
    with torch.no_grad():
        for _ in range(2):  # train-mode passes update BN running stats and the SN power-iteration vectors
            discriminator(generator(torch.randn(4, 16), torch.tensor([0, 1, 2, 0])), torch.tensor([0, 1, 2, 0]))
        generator_ema = copy.deepcopy(generator)
        for parameter in generator_ema.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        for layer in (generator.attention_layers()[0][1], discriminator.attention_layers()[0][1]):
            layer.gamma.fill_(0.25)  # non-zero, so attention contributes to the outputs compared below
    return generator.eval(), generator_ema.eval(), discriminator.eval()


def save(path: Path, networks, half: bool = False) -> Path:
    generator, generator_ema, discriminator = networks
    return save_checkpoint(path, config=CONFIG, generator=generator, generator_ema=generator_ema,
                           discriminator=discriminator, step=1234, wall_time_s=56.789, dataset="faces",
                           history=HISTORY, training={"batch_size": 4}, half=half)


@pytest.fixture(scope="module")
def checkpoint_file(networks, tmp_path_factory) -> Path:
    return save(tmp_path_factory.mktemp("ckpt") / "step_0001234.safetensors", networks)


def outputs(networks) -> list[torch.Tensor]:
    """G, G_ema and D outputs on fixed inputs (eval mode: no state changes)."""
    generator, generator_ema, discriminator = networks
    generator_input = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([2, 0, 1])
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        return [generator(generator_input, labels), generator_ema(generator_input, labels),
                discriminator(images, labels)]


def test_round_trip_reproduces_every_network_and_the_training_record_exactly(networks, checkpoint_file):
    contents = read_checkpoint(checkpoint_file)
    assert contents.config == CONFIG
    assert (contents.step, contents.wall_time_s, contents.dataset) == (1234, 56.789, "faces")
    assert contents.history == TrainingHistory.from_dict(HISTORY) and contents.training == {"batch_size": 4}
    loaded = build_networks_from(contents)
    assert all(not module.training for module in loaded)
    for original, restored in zip(outputs(networks), outputs(loaded)):
        assert torch.equal(original, restored)
    for original, restored in zip(networks, loaded):
        expected = original.state_dict()
        assert all(torch.equal(expected[key], value) for key, value in restored.state_dict().items())
    generator_output, ema_output, _ = outputs(loaded)
    assert not torch.allclose(generator_output, ema_output)  # G and G_ema were not swapped or merged


def test_half_checkpoint_is_half_the_size_and_loads_back_as_close_float32(networks, checkpoint_file, tmp_path):
    half_file = save(tmp_path / "half.safetensors", networks, half=True)
    ratio = half_file.stat().st_size / checkpoint_file.stat().st_size
    assert 0.45 < ratio < 0.6, ratio
    loaded = build_networks_from(read_checkpoint(half_file))
    for original, restored in zip(networks, loaded):
        expected = original.state_dict()
        for key, value in restored.state_dict().items():
            assert value.dtype == expected[key].dtype, key  # float32 back; num_batches_tracked stays int64
            assert torch.allclose(value.float(), expected[key].float(), rtol=2e-3, atol=1e-4), key
    for original, restored in zip(outputs(networks), outputs(loaded)):
        assert (original - restored).abs().max() < 0.02


def assert_refused(path: Path, *reasons: str) -> str:
    """read_checkpoint raises exactly CheckpointError, naming the file and one of the given reasons."""
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert type(caught.value) is CheckpointError
    assert path.name in message, message
    assert any(reason in message for reason in reasons), message
    return message


def header_length(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize("where", ["in_length", "just_after_length", "mid_header", "end_of_header",
                                   "first_tensor_byte", "mid_data", "last_byte"])
def test_a_truncated_file_is_refused_naming_the_file(checkpoint_file, tmp_path, where):
    raw = checkpoint_file.read_bytes()
    header_end = 8 + header_length(checkpoint_file)
    cut = {"in_length": 5, "just_after_length": 9, "mid_header": header_end // 2, "end_of_header": header_end,
           "first_tensor_byte": header_end + 1, "mid_data": (header_end + len(raw)) // 2,
           "last_byte": len(raw) - 1}[where]
    broken = tmp_path / "cut.safetensors"
    broken.write_bytes(raw[:cut])
    assert_refused(broken, "truncated", "too short")


def test_an_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert_refused(empty, "too short (0 bytes)")


def test_a_missing_file_is_refused(tmp_path):
    assert_refused(tmp_path / "nowhere.safetensors", "no such checkpoint file")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_are_refused(tmp_path, seed):
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(seed),
                                    dtype=torch.uint8).numpy().tobytes())
    assert_refused(noise, "not a safetensors file")


def test_a_small_header_length_followed_by_garbage_is_refused(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes((16).to_bytes(8, "little") + b"\xff\xfe{not json!!}" + bytes(100))
    assert_refused(garbage, "header is not JSON")


def test_a_text_file_is_refused(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("These are my training notes.\nNothing to see here.\n" * 20)
    assert_refused(text, "not a safetensors file")


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    foreign = tmp_path / "model.safetensors"
    save_file({"weight": torch.ones(3, 3)}, str(foreign))
    assert_refused(foreign, "not a sagan-viz checkpoint")
    save_file({"weight": torch.ones(3, 3)}, str(foreign), metadata={"format": "pt"})
    assert_refused(foreign, "not a sagan-viz checkpoint")


def rewrite(source: Path, target: Path, change_tensors=None, change_metadata=None) -> Path:
    """Copy a checkpoint through safetensors, letting the test alter tensors or metadata.

    The digest is recomputed, as a hostile or careless writer would: what is tested is the check behind it.
    """
    tensors = load_file(str(source))
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
    if change_tensors:
        change_tensors(tensors)
    if change_metadata:
        change_metadata(metadata)
    target.write_bytes(serialise_checkpoint(tensors, metadata))
    return target


def test_an_unchanged_rewrite_still_loads(checkpoint_file, tmp_path):
    # The control for the tests below: the rewrite itself does not break a file.
    read_checkpoint(rewrite(checkpoint_file, tmp_path / "copy.safetensors"))


def test_a_config_for_another_architecture_is_refused(checkpoint_file, tmp_path):
    def resolution_64(metadata):
        metadata["model_config"] = json.dumps({**CONFIG.to_dict(), "resolution": 64})

    message = assert_refused(rewrite(checkpoint_file, tmp_path / "res64.safetensors", change_metadata=resolution_64),
                             "do not match the architecture", "the config's architecture needs")
    assert "G" in message

    def no_attention(metadata):
        metadata["model_config"] = json.dumps({**CONFIG.to_dict(), "g_attention": [], "d_attention": []})

    assert_refused(rewrite(checkpoint_file, tmp_path / "noattn.safetensors", change_metadata=no_attention),
                   "unexpected ['stages.1.")


def test_a_missing_or_renamed_tensor_is_refused(checkpoint_file, tmp_path):
    name = "G_ema.output_conv.parametrizations.weight.original"
    dropped = rewrite(checkpoint_file, tmp_path / "dropped.safetensors", change_tensors=lambda t: t.pop(name))
    message = assert_refused(dropped, "missing ['output_conv.parametrizations.weight.original']")
    assert "G_ema weights" in message

    def rename(tensors):
        tensors["D.linear.parametrizations.weight.renamed"] = tensors.pop("D.linear.parametrizations.weight.original")

    assert_refused(rewrite(checkpoint_file, tmp_path / "renamed.safetensors", change_tensors=rename),
                   "unexpected ['linear.parametrizations.weight.renamed']")

    def stray(tensors):
        tensors["E.weight"] = torch.zeros(2)

    assert_refused(rewrite(checkpoint_file, tmp_path / "stray.safetensors", change_tensors=stray),
                   "unexpected tensor 'E.weight'")


def test_a_tensor_of_the_wrong_shape_is_refused(checkpoint_file, tmp_path):
    name = "G.linear.parametrizations.weight.original"

    def reshape(tensors):
        tensors[name] = torch.zeros(tensors[name].shape[0], tensors[name].shape[1] + 1)

    message = assert_refused(rewrite(checkpoint_file, tmp_path / "shape.safetensors", change_tensors=reshape),
                             "has shape")
    assert name in message


def test_a_float_tensor_stored_as_integers_is_refused(checkpoint_file, tmp_path):
    name = "D.stages.0.conv1.parametrizations.weight.original"

    def as_integers(tensors):
        tensors[name] = tensors[name].view(torch.int32)  # same bytes, read as the wrong type

    assert_refused(rewrite(checkpoint_file, tmp_path / "dtype.safetensors", change_tensors=as_integers),
                   "stored as torch.int32")


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(checkpoint_file, tmp_path, bad_value):
    name = "D.stages.1.gamma"  # D's attention layer sits after its first block

    def poison(tensors):
        tensors[name] = torch.full_like(tensors[name], bad_value)

    message = assert_refused(rewrite(checkpoint_file, tmp_path / "nan.safetensors", change_tensors=poison),
                             "NaN or infinite")
    assert name in message


@pytest.mark.parametrize("version", ["2", "0", None])
def test_another_format_version_is_refused(checkpoint_file, tmp_path, version):
    def change(metadata):
        if version is None:
            del metadata["version"]
        else:
            metadata["version"] = version

    assert_refused(rewrite(checkpoint_file, tmp_path / "version.safetensors", change_metadata=change),
                   f"format version {version}")


@pytest.mark.parametrize("field, value, reason", [
    ("step", "twelve", "damaged metadata"),
    ("history", "{not json", "damaged metadata"),
    ("model_config", json.dumps({**CONFIG.to_dict(), "colour": "red"}), "unknown model config fields"),
    ("model_config", json.dumps({**CONFIG.to_dict(), "resolution": 48}), "resolution must be one of"),
])
def test_damaged_metadata_is_refused(checkpoint_file, tmp_path, field, value, reason):
    def change(metadata):
        metadata[field] = value

    assert_refused(rewrite(checkpoint_file, tmp_path / "meta.safetensors", change_metadata=change), reason)


def test_write_atomically_leaves_only_the_target_behind(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    write_atomically(target, b"first")
    write_atomically(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch, failing):
    target = tmp_path / "file.bin"
    write_atomically(target, b"old contents")
    seen_temporaries = []

    def broken(*args, **kwargs):
        seen_temporaries.extend(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        raise OSError("disk on fire")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="disk on fire"):
        write_atomically(target, b"new contents that never land")
    monkeypatch.undo()
    assert seen_temporaries, "the write did not go through a temporary file"
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_a_failed_checkpoint_save_leaves_the_previous_checkpoint_loadable(networks, tmp_path, monkeypatch):
    path = save(tmp_path / "step_0000001.safetensors", networks)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("killed mid-write")

    monkeypatch.setattr(os, "replace", broken)
    generator, generator_ema, discriminator = networks
    with pytest.raises(OSError):
        save_checkpoint(path, config=CONFIG, generator=generator, generator_ema=generator_ema,
                        discriminator=discriminator, step=2, wall_time_s=1.0, dataset="faces", history={})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_checkpoint(path).step == 1234
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_resume_state_round_trips_tensors_and_generator_states(tmp_path):
    checkpoint = tmp_path / "step_0000003.safetensors"
    state = {"optimizer": {"state": {0: {"exp_avg": torch.arange(4.0)}}, "param_groups": [{"lr": 1e-4}]},
             "rng": [torch.Generator().manual_seed(3).get_state()]}
    assert save_resume_state(checkpoint, state) == resume_state_path(checkpoint)
    assert resume_state_path(checkpoint).name == "step_0000003.resume.pt"
    loaded = load_resume_state(checkpoint)
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], torch.arange(4.0))
    assert torch.equal(loaded["rng"][0], state["rng"][0])


class RunsCodeWhenUnpickled:
    """A pickle payload: unpickling calls open(marker, 'w'), creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_resume_state_with_a_pickled_object_is_refused_without_running_it(tmp_path):
    checkpoint = tmp_path / "step_0000003.safetensors"
    marker = tmp_path / "code-ran"
    sidecar = resume_state_path(checkpoint)
    torch.save({"optimizer_g": RunsCodeWhenUnpickled(marker)}, sidecar)
    pickle.loads(pickle.dumps(RunsCodeWhenUnpickled(marker))).close()  # control: the payload does run code...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError) as caught:  # ...but the loader never unpickles it
        load_resume_state(checkpoint)
    assert type(caught.value) is CheckpointError
    assert sidecar.name in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a torch file", None])
def test_a_missing_or_damaged_resume_state_is_refused(tmp_path, content):
    checkpoint = tmp_path / "step_0000003.safetensors"
    if content is not None:
        resume_state_path(checkpoint).write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        load_resume_state(checkpoint)
    assert type(caught.value) is CheckpointError
    assert "step_0000003.resume.pt" in str(caught.value)


# --- the shape table the loader checks against, and configs read from files -------------------------------------

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


# --- the last line of defence: a generation with NaN is never drawn as numbers -----------------------------------

def test_a_generation_with_non_finite_values_shows_one_warning_instead_of_numbers(tiny_checkpoint):
    from sagan_viz import load_checkpoint
    from sagan_viz.app.views import inspect_view

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
    from sagan_viz import load_checkpoint
    from sagan_viz.app.views import inspect_view

    generation = load_checkpoint(tiny_checkpoint, device="cpu").generate(seed=2)
    capture = generation.layers["G.attn0"]
    capture.features = capture.features * 1e30  # finite, but f(x)^T g(x) overflows to inf: β is NaN
    assert generation.problem is None
    view = inspect_view(generation, "G.attn0", [(5.0, 5.0)])
    assert "non-finite values (NaN/inf) in β of G.attn0" in view.details and "max β" not in view.details

"""The one checkpoint reader and writer: exact round trips, atomic writes, and clear errors for bad files."""
import builtins
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from checkpoint_helpers import CONFIG, HISTORY, assert_refused, header_length, outputs, rewrite, save
from safetensors.torch import save_file

from sagan_viz.checkpoint import (
    CheckpointError,
    build_networks_from,
    load_resume_state,
    read_checkpoint,
    resume_state_path,
    save_checkpoint,
    save_resume_state,
)
from sagan_viz.history import TrainingHistory


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

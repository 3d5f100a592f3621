"""`python -m training.export`: chosen snapshots of a run, shipped without resume state, optionally float16."""
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from training_helpers import run

from sagan_viz.checkpoint import PARTS, read_checkpoint
from training.export import main, run_steps, spread_steps


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 3-step run with a checkpoint (and its resume state) at every step."""
    out = tmp_path_factory.mktemp("export") / "run"
    run(out, 3, "--checkpoint-every", "1", "--history-every", "1", "--sample-every", "1000")
    return out


def test_spread_steps_picks_evenly_from_the_first_to_the_last_asked_for():
    steps = list(range(0, 3001, 250))  # 0, 250, ..., 3000
    assert spread_steps(steps, 4) == [0, 1000, 2000, 3000]
    assert spread_steps(steps, 3, last=2000) == [0, 1000, 2000]
    assert spread_steps(steps, 4, last=2300) == [0, 750, 1500, 2250]  # up to 2250, the newest at or before 2300
    assert spread_steps([0, 100, 400, 1000], 3) == [0, 400, 1000]  # the nearest to 0, 500 and 1000
    assert spread_steps(steps, 1) == [3000]
    assert spread_steps([0, 5, 9], 10) == [0, 5, 9]
    with pytest.raises(ValueError, match="no snapshots up to that step"):
        spread_steps([100, 200], 2, last=50)


def test_run_steps_reads_only_files_named_step_N(tmp_path):
    for name in ("step_0000000.safetensors", "step_0000250.safetensors", "step_12.safetensors",
                 "step_.safetensors", "step_3_copy.safetensors", "step_0000500.resume.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert run_steps(tmp_path) == [0, 12, 250]


def test_export_ships_the_chosen_snapshots_without_resume_state_and_in_float16(finished_run, tmp_path, capsys):
    out = tmp_path / "shipped"
    assert main(["--run", str(finished_run), "--out", str(out), "--count", "2", "--half"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["step_0000000.safetensors", "step_0000003.safetensors"]
    assert capsys.readouterr().out.splitlines() == [str(out / "step_0000000.safetensors"),
                                                    str(out / "step_0000003.safetensors")]
    for name in ("step_0000000.safetensors", "step_0000003.safetensors"):
        with safe_open(str(out / name), framework="pt") as handle:
            dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}
        assert "F16" in dtypes and not dtypes & {"F32", "F64", "BF16"}, dtypes
        source, shipped = read_checkpoint(finished_run / name), read_checkpoint(out / name)
        for field in ("config", "step", "wall_time_s", "dataset", "history", "training"):
            assert getattr(shipped, field) == getattr(source, field), field
        for part in PARTS:
            for key, tensor in source.state_dicts[part].items():
                expected = tensor.half().float() if tensor.is_floating_point() else tensor
                assert torch.equal(shipped.state_dicts[part][key], expected), f"{part}.{key}"


def test_export_without_half_keeps_every_tensor_bit_for_bit(finished_run, tmp_path):
    out = tmp_path / "shipped"
    assert main(["--run", str(finished_run), "--out", str(out), "--count", "1", "--last", "2"]) == 0
    assert [path.name for path in out.iterdir()] == ["step_0000002.safetensors"]
    source, shipped = (read_checkpoint(folder / "step_0000002.safetensors") for folder in (finished_run, out))
    for part in PARTS:
        assert all(torch.equal(shipped.state_dicts[part][key], tensor)
                   for key, tensor in source.state_dicts[part].items()), part


@pytest.mark.parametrize("flags, reason", [
    (["--count", "2"], "--run and --out are required"),
    (["--last", "-1"], "no snapshots up to that step"),
])
def test_export_errors_are_one_line_and_write_nothing(finished_run, tmp_path, capsys, flags, reason):
    out = tmp_path / "shipped"
    argv = flags if "--count" in flags else ["--run", str(finished_run), "--out", str(out), *flags]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and reason in error.splitlines()[-1]
    assert not out.exists()

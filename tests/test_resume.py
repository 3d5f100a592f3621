"""Resume: exactly as one run, after SIGKILL mid-write, from damaged sidecars and checkpoints, not on other data."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import (
    TINY_FLAGS,
    assert_one_line_error,
    assert_same_nested,
    assert_same_networks,
    checkpoint_names,
    run,
)

from sagan_viz.atomic_files import HOLD_WRITE_VARIABLE
from sagan_viz.checkpoint import SNAPSHOT_GLOB, load_resume_state, read_checkpoint
from training.loop import find_latest_checkpoint
from training.train import main

ROOT = Path(__file__).resolve().parents[1]


def test_resuming_halfway_gives_the_same_weights_optimizers_and_history_as_one_run(tmp_path):
    flags = ("--checkpoint-every", "2", "--history-every", "2", "--sample-every", "1000")
    run(tmp_path / "straight", 4, *flags)
    run(tmp_path / "halves", 2, *flags)
    run(tmp_path / "halves", 4, *flags, "--resume")
    straight = read_checkpoint(tmp_path / "straight" / "step_0000004.safetensors")
    resumed = read_checkpoint(tmp_path / "halves" / "step_0000004.safetensors")
    assert_same_networks(straight, resumed)
    assert straight.history == resumed.history
    assert straight.history.steps == [0, 2, 4]
    assert_same_nested(load_resume_state(straight.path), load_resume_state(resumed.path))
    halfway = read_checkpoint(tmp_path / "straight" / "step_0000002.safetensors")
    changed = halfway.state_dicts["G"]["linear.parametrizations.weight.original"]
    assert not torch.equal(changed, straight.state_dicts["G"]["linear.parametrizations.weight.original"])


def test_resuming_from_the_step_zero_checkpoint_does_not_repeat_step_zero(tmp_path):
    run(tmp_path / "straight", 2, "--checkpoint-every", "1", "--history-every", "1", "--sample-every", "1000")
    (tmp_path / "resumed").mkdir()
    for name in ("step_0000000.safetensors", "step_0000000.resume.pt"):
        shutil.copy(tmp_path / "straight" / name, tmp_path / "resumed" / name)
    run(tmp_path / "resumed", 2, "--checkpoint-every", "1", "--history-every", "1", "--sample-every", "1000",
        "--resume")
    straight = read_checkpoint(tmp_path / "straight" / "step_0000002.safetensors")
    resumed = read_checkpoint(tmp_path / "resumed" / "step_0000002.safetensors")
    assert resumed.history.steps == [0, 1, 2]
    assert resumed.history == straight.history
    assert_same_networks(straight, resumed)


# --- SIGKILL while a checkpoint is being written, then --resume ---------------------------------------------

KILL_STEPS = 30
KILL_FLAGS = ("--checkpoint-every", "1", "--history-every", "1", "--sample-every", "1000")


def temporaries(out: Path) -> set[str]:
    return {name for name in os.listdir(out) if name.startswith(".step_") and name.endswith(".tmp")} \
        if out.exists() else set()


def launch_trainer(out: Path, log: Path, resume: bool, hold_write: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "training.train", *TINY_FLAGS, *KILL_FLAGS, "--steps", str(KILL_STEPS),
               "--out", str(out), *(["--resume"] if resume else [])]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    if hold_write is not None:
        environment[HOLD_WRITE_VARIABLE] = hold_write
    with open(log, "ab") as stream:
        return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=stream, stderr=stream)


def kill_while_writing(process: subprocess.Popen, out: Path, log: Path, file_kind: str) -> str:
    """Poll every ~1 ms; SIGKILL while a temporary .step_*<file_kind>*.tmp exists (after >= 2 new checkpoints).

    Falls back to a kill once 5 new checkpoints exist. Returns what happened, for the record.
    """
    stale_temporaries, old_checkpoints = temporaries(out), checkpoint_names(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"trainer ended before the kill:\n{log.read_text()[-2000:]}"
        new_checkpoints = len(checkpoint_names(out) - old_checkpoints)
        writing = {name for name in temporaries(out) - stale_temporaries if file_kind in name}
        if writing and new_checkpoints >= 2:
            process.kill()
            process.wait()
            left_behind = temporaries(out) - stale_temporaries
            if left_behind:
                return f"killed mid-write of {sorted(left_behind)[0]}"
            return f"killed just after the write of {sorted(writing)[0]} finished"
        if new_checkpoints >= 5:
            process.kill()
            process.wait()
            return f"fallback: killed with {new_checkpoints} new checkpoints, no write seen"
        time.sleep(0.001)
    process.kill()
    process.wait()
    raise AssertionError(f"the trainer wrote no checkpoints in 120 s:\n{log.read_text()[-2000:]}")


def kill_on_cue(out: Path, log: Path, cue: Path) -> str:
    """Run the trainer until its third checkpoint write stops halfway on cue, check that, then SIGKILL it."""
    process = launch_trainer(out, log, resume=False, hold_write=f"3:{cue}")
    deadline = time.monotonic() + 120
    while not cue.exists():
        assert process.poll() is None, f"trainer ended before the cue:\n{log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the trainer never reached its third checkpoint write"
        time.sleep(0.01)
    held = Path(cue.read_text())
    assert held.exists() and held.name.startswith(".step_"), f"no half-written temporary at the cue: {held}"
    process.kill()
    process.wait()
    assert held.exists(), "the kill did not land inside the write"
    return f"killed mid-write of {held.name} (held on cue)"


def assert_folder_survived_the_kill(out: Path) -> Path:
    """Every file named as a checkpoint loads, and the newest resumable one has its resume state."""
    for path in sorted(out.glob(SNAPSHOT_GLOB)):
        contents = read_checkpoint(path)
        assert contents.history.steps == list(range(contents.step + 1)), path.name
    latest = find_latest_checkpoint(out)
    assert latest is not None
    read_checkpoint(latest)
    load_resume_state(latest)
    return latest


def test_kill_during_a_checkpoint_write_then_resume_continues_exactly(tmp_path, record_property):
    out, log = tmp_path / "run", tmp_path / "trainer.log"
    # First a kill that provably lands inside a checkpoint file's write (the writer holds halfway on cue),
    # then, resuming, kills timed by polling: inside any write (the sidecar comes first), then a checkpoint's.
    events = [kill_on_cue(out, log, tmp_path / "cue")]
    assert_folder_survived_the_kill(out)
    wanted = [".step_", ".safetensors."]
    for _ in range(3):  # killed --resume runs
        process = launch_trainer(out, log, resume=True)
        events.append(kill_while_writing(process, out, log, wanted[0]))
        assert_folder_survived_the_kill(out)
        if events[-1].startswith("killed mid-write"):
            wanted.pop(0)
        if not wanted:
            break
    record_property("kill_events", events)
    assert events[0].startswith("killed mid-write") and "(held on cue)" in events[0]
    print(f"\nkill-and-resume: {'; '.join(events)}")

    start = read_checkpoint(assert_folder_survived_the_kill(out))
    assert start.step < KILL_STEPS
    run(out, KILL_STEPS, *KILL_FLAGS, "--resume")
    assert not temporaries(out), "the resumed run left (or kept) temporaries of interrupted writes"
    final = read_checkpoint(out / f"step_{KILL_STEPS:07d}.safetensors")
    history = final.history
    assert history.steps == list(range(KILL_STEPS + 1))  # fixed interval 1, from 0, no gaps or repeats
    kept = start.step + 1
    for series in ("loss_d", "loss_g"):
        assert len(getattr(history, series)) == KILL_STEPS + 1
        assert getattr(history, series)[:kept] == getattr(start.history, series)
    assert history.gamma.keys() == start.history.gamma.keys() and len(history.gamma) == 2
    for name, values in history.gamma.items():
        assert len(values) == KILL_STEPS + 1
        assert values[:kept] == start.history.gamma[name]

    # The killed-and-resumed run equals one that was never interrupted.
    run(tmp_path / "uninterrupted", KILL_STEPS, "--checkpoint-every", "1000", "--history-every", "1",
        "--sample-every", "1000")
    reference = read_checkpoint(tmp_path / "uninterrupted" / f"step_{KILL_STEPS:07d}.safetensors")
    assert_same_networks(reference, final)
    assert reference.history == history


# --- resuming from damaged files ------------------------------------------------------------------------------

RESUME_FLAGS = ("--checkpoint-every", "1", "--history-every", "1", "--sample-every", "1000")


@pytest.fixture(scope="module")
def resumable_run(tmp_path_factory) -> Path:
    """A 2-step run with checkpoints (and resume state) at steps 0, 1 and 2."""
    out = tmp_path_factory.mktemp("resumable") / "run"
    run(out, 2, *RESUME_FLAGS)
    return out


def copy_run(resumable_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(resumable_run, tmp_path / "run"))


def resume_fails(out: Path, capsys, *flags: str) -> str:
    """Run --resume to step 3 and return its one-line error (exit code 2, no traceback)."""
    with pytest.raises(SystemExit) as exit_:
        main([*TINY_FLAGS, *RESUME_FLAGS, "--out", str(out), "--steps", "3", "--resume", *flags])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    lines = [line for line in error.splitlines() if "error:" in line]
    assert len(lines) == 1, error
    return lines[0]


def damage_sidecar(kind: str, sidecar: Path) -> str:
    """Damage a resume sidecar in one way; returns what the error must say."""
    saved = torch.load(sidecar, weights_only=True)
    if kind == "empty dict":
        torch.save({}, sidecar)
        return "damaged resume state (no optimizer_g, optimizer_d, data_generator_states, noise_generator_states)"
    if kind == "optimizers swapped":
        saved["optimizer_g"], saved["optimizer_d"] = saved["optimizer_d"], saved["optimizer_g"]
        torch.save(saved, sidecar)
        return "its optimizer_g state does not fit the networks"
    if kind == "moment of the wrong shape":
        saved["optimizer_d"]["state"][0]["exp_avg"] = torch.zeros(3)
        torch.save(saved, sidecar)
        return "its optimizer_d state does not fit the networks (exp_avg of shape (3,)"
    if kind == "optimizer not a dict":
        saved["optimizer_g"] = [1, 2, 3]
        torch.save(saved, sidecar)
        return "its optimizer_g state does not fit the networks"
    if kind == "no generator states":
        saved["noise_generator_states"] = []
        torch.save(saved, sidecar)
        return "damaged resume state (noise_generator_states: 0 states for rank 0"
    sidecar.write_bytes(sidecar.read_bytes()[:100])  # truncated
    return "unreadable resume state"


@pytest.mark.parametrize("kind", ["empty dict", "optimizers swapped", "moment of the wrong shape",
                                  "optimizer not a dict", "no generator states", "truncated"])
def test_a_damaged_resume_sidecar_is_one_line_naming_it(resumable_run, tmp_path, capsys, kind):
    out = copy_run(resumable_run, tmp_path)
    sidecar = out / "step_0000002.resume.pt"
    reason = damage_sidecar(kind, sidecar)
    before = sorted(path.name for path in out.iterdir())
    line = resume_fails(out, capsys)
    assert f"{sidecar}: " in line and reason in line and "--resume-from-valid" in line, line
    assert sorted(path.name for path in out.iterdir()) == before  # nothing was written


def flip_a_data_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1000] ^= 0x04
    path.write_bytes(bytes(raw))


def test_a_damaged_newest_checkpoint_is_named_and_skipped_only_when_asked(resumable_run, tmp_path, capsys):
    out = copy_run(resumable_run, tmp_path)
    newest = out / "step_0000002.safetensors"
    flip_a_data_bit(newest)
    line = resume_fails(out, capsys)
    assert f"{newest}: tensor data does not match its digest: the file is damaged" in line
    assert "pass --resume-from-valid to continue from the newest checkpoint that loads" in line

    assert main([*TINY_FLAGS, *RESUME_FLAGS, "--out", str(out), "--steps", "3", "--resume-from-valid"]) == 0
    said = capsys.readouterr().err
    assert f"skipping {newest}: tensor data does not match its digest" in said
    assert "resuming from step_0000001.safetensors (step 1), the newest valid checkpoint" in said
    # Resumed exactly from step 1: the same as a run that never stopped (step 2 was rewritten on the way).
    run(tmp_path / "straight", 3, *RESUME_FLAGS)
    straight = read_checkpoint(tmp_path / "straight" / "step_0000003.safetensors")
    resumed = read_checkpoint(out / "step_0000003.safetensors")
    assert_same_networks(straight, resumed)
    assert straight.history == resumed.history
    read_checkpoint(newest)  # rewritten by the resumed run


def test_an_invalid_file_named_like_a_newer_checkpoint_is_reported_and_can_be_skipped(resumable_run, tmp_path,
                                                                                       capsys):
    out = copy_run(resumable_run, tmp_path)
    impostor = out / "step_9999999.safetensors"
    impostor.write_bytes(b"not a checkpoint at all, just a file with a checkpoint's name")
    (out / "step_9999999.resume.pt").write_bytes(b"junk")
    for odd in ("step_.safetensors", "step_12a.safetensors", "step_3_copy.safetensors"):  # not step_N: ignored
        (out / odd).write_bytes(b"")
        (out / odd.replace(".safetensors", ".resume.pt")).write_bytes(b"")
    line = resume_fails(out, capsys)
    assert f"{impostor}: not a safetensors file" in line and "--resume-from-valid" in line
    assert main([*TINY_FLAGS, *RESUME_FLAGS, "--out", str(out), "--steps", "3", "--resume-from-valid"]) == 0
    said = capsys.readouterr().err
    assert f"skipping {impostor}" in said and "resuming from step_0000002.safetensors (step 2)" in said
    assert read_checkpoint(out / "step_0000003.safetensors").history.steps == [0, 1, 2, 3]


def test_resume_from_valid_with_nothing_valid_says_so(resumable_run, tmp_path, capsys):
    out = copy_run(resumable_run, tmp_path)
    for path in out.glob("step_*.safetensors"):
        flip_a_data_bit(path)
    with pytest.raises(SystemExit) as exit_:
        main([*TINY_FLAGS, *RESUME_FLAGS, "--out", str(out), "--steps", "3", "--resume-from-valid"])
    assert exit_.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--resume-from-valid: none of the 3 checkpoints")


@pytest.mark.parametrize("resume", [True, False])
def test_temporaries_left_by_interrupted_writes_are_removed_at_start_and_counted(resumable_run, tmp_path, capsys,
                                                                                 resume):
    out = copy_run(resumable_run, tmp_path) if resume else tmp_path / "fresh"
    out.mkdir(exist_ok=True)
    leftovers = [".step_0000003.safetensors.a1b2c3d4.tmp", ".step_0000003.resume.pt.zz_9xk2q.tmp",
                 ".step_0000001.safetensors.q8w7e6r5.tmp"]
    others = [".notes.txt.k2j3h4g5.tmp", "step_0000003.safetensors.tmp", ".step_0000003.safetensors.tmp"]
    for name in leftovers + others:
        (out / name).write_bytes(b"partial write")
    run(out, 3, *RESUME_FLAGS, *(["--resume"] if resume else []))
    said = capsys.readouterr().err
    assert f"removed 3 unfinished temporary file(s) left by an interrupted write in {out}" in said
    assert not any((out / name).exists() for name in leftovers)
    assert all((out / name).exists() for name in others)  # not write_atomically's names: not ours to delete


def test_resuming_on_another_data_set_is_refused_naming_both_and_changes_nothing(resumable_run, tmp_path, capsys):
    out = copy_run(resumable_run, tmp_path)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for index in range(4):
        Image.fromarray(np.full((32, 32, 3), 60 * index, np.uint8)).save(pictures / f"{index}.png")
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    line = resume_fails(out, capsys, "--data", str(pictures))
    assert f"{out / 'step_0000002.safetensors'} was trained on 'faces', not '{pictures}'" in line, line
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before

"""The trainer: hinge losses, DDP on CPU, the CLI, samples and a conditional run (resume: test_resume.py)."""
import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing
from PIL import Image
from training_helpers import TINY_FLAGS, assert_one_line_error, checkpoint_names, run

import sagan_viz
import training.loop
from sagan_viz.checkpoint import PARTS, build_networks_from, load_resume_state, read_checkpoint
from sagan_viz.config import ModelConfig
from sagan_viz.imaging import to_uint8_images
from sagan_viz.networks import Discriminator, Generator
from training.faces import FACE_CLASSES
from training.loop import (
    hinge_loss_discriminator,
    hinge_loss_generator,
    train,
)
from training.options import TrainConfig
from training.progress import save_sample_grid
from training.train import build_parser, configs_from_arguments, main

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(resolution=32, g_channels=8, d_channels=8, z_dim=16)


def test_hinge_losses_match_hand_computed_values():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # D: mean(max(0, 1 - real)) = (0 + 0.5 + 2) / 3; mean(max(0, 1 + fake)) = (0 + 1 + 1.5) / 3
    assert hinge_loss_discriminator(real, fake).item() == pytest.approx(5.0 / 3.0)
    assert hinge_loss_discriminator(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -4.0])).item() == 0.0
    assert hinge_loss_generator(fake).item() == pytest.approx(0.5)  # -mean(fake)
    assert hinge_loss_generator(torch.tensor([3.0, 1.0])).item() == pytest.approx(-2.0)


# --- DDP: two CPU processes with gloo -------------------------------------------------------------------------

DDP_STEPS = 3


def ddp_worker(rank: int, world_size: int, port: int, out_dir: str, dump_dir: str) -> None:
    """One torchrun-like rank: train, then dump this rank's final weights for the test to compare."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    options = TrainConfig(out_dir=out_dir, data_size=64, steps=DDP_STEPS, batch_size=4, checkpoint_every=2,
                          history_every=1, sample_every=1000, progress=False, device="cpu")
    state = train(options, ModelConfig(**TINY))
    torch.save({"G": state.generator.state_dict(), "G_ema": state.generator_ema.state_dict(),
                "D": state.discriminator.state_dict()}, Path(dump_dir) / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ddp_on_two_cpu_processes_keeps_ranks_identical_and_only_rank_0_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out, dumps = tmp_path / "run", tmp_path / "dumps"
    dumps.mkdir()
    torch.multiprocessing.spawn(ddp_worker, args=(2, free_port(), str(out), str(dumps)), nprocs=2, join=True)
    ranks = [torch.load(dumps / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    config = ModelConfig(**TINY)
    generator_parameters = [name for name, _ in Generator(config).named_parameters()]
    parameter_names = {"G": generator_parameters, "G_ema": generator_parameters,
                       "D": [name for name, _ in Discriminator(config).named_parameters()]}
    for part, names in parameter_names.items():
        different = [name for name in names if not torch.equal(ranks[0][part][name], ranks[1][part][name])]
        assert not different, f"{part} parameters differ between ranks: {different[:3]}"
        # Buffers too (SN vectors, BN counters), except BN running statistics: DDP broadcasts rank 0's
        # buffers at the start of each forward, and each rank's last forward then adds its own batch.
        different = [key for key in ranks[0][part] if not torch.equal(ranks[0][part][key], ranks[1][part][key])]
        assert all(key.endswith(("running_mean", "running_var")) for key in different), different

    assert checkpoint_names(out) == {"step_0000000.safetensors", "step_0000002.safetensors",
                                     "step_0000003.safetensors"}
    final = read_checkpoint(out / "step_0000003.safetensors")
    for part in PARTS:  # the checkpoint is rank 0's state, buffers included
        assert all(torch.equal(ranks[0][part][key], value) for key, value in final.state_dicts[part].items())
    first = read_checkpoint(out / "step_0000000.safetensors")
    assert not torch.equal(first.state_dicts["D"]["linear.parametrizations.weight.original"],
                           final.state_dicts["D"]["linear.parametrizations.weight.original"])
    resume_state = load_resume_state(final.path)
    data_states = resume_state["data_generator_states"]
    assert len(data_states) == 2 and not torch.equal(data_states[0], data_states[1])  # each rank drew its own data
    assert final.history.steps == [0, 1, 2, 3]


# --- the command line -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run_and_samples(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A 3-step run with samples every 2 steps and checkpoints at 0, 2 and 3; and what each sample grid was drawn from."""
    out = tmp_path_factory.mktemp("finished") / "run"
    sampled = []

    def record_then_save(generator_ema, z, labels, out_dir, step):
        sampled.append({"step": step, "z": z.clone(), "labels": labels})
        return save_sample_grid(generator_ema, z, labels, out_dir, step)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training.loop, "save_sample_grid", record_then_save)
        run(out, 3, "--sample-every", "2", "--checkpoint-every", "2", "--history-every", "1")
    return out, sampled


@pytest.fixture(scope="module")
def finished_run(finished_run_and_samples) -> Path:
    return finished_run_and_samples[0]


def test_help_mentions_a_flag_for_every_training_and_model_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    renamed = {"out_dir": "--out", "progress": "--no-progress", "num_classes": "--conditional"}
    fields = [f.name for f in dataclasses.fields(TrainConfig)] + [
        f.name for f in dataclasses.fields(ModelConfig) if f.name != "image_channels"  # RGB only
    ]
    expected = [renamed.get(name, "--" + name.replace("_", "-")) for name in fields] + ["--resume", "--help"]
    missing = [flag for flag in expected if flag not in text]
    assert not missing, missing
    for action in build_parser()._actions:  # and every flag the parser has is explained
        assert action.help, action.option_strings


def test_flag_defaults_are_the_config_defaults():
    options, config = configs_from_arguments(build_parser().parse_args(["--out", "somewhere"]))
    assert options == TrainConfig(out_dir="somewhere")
    assert config == ModelConfig()


def error_cases(tmp_path: Path, finished_run: Path) -> dict[str, tuple[list[str], str]]:
    return {
        "attention size": (["--resolution", "32", "--g-attention", "64", "--out", str(tmp_path)],
                           "G has no 64x64 feature map at resolution 32"),
        "zero steps": (["--steps", "0", "--out", str(tmp_path)], "steps must be at least 1 (got 0)"),
        "no cuda": (["--device", "cuda", "--out", str(tmp_path)], "sees no CUDA GPU"),
        "unknown data": (["--data", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "out")],
                         "unknown data source"),
        "nothing to resume": (["--resume", "--out", str(tmp_path / "empty")], "no checkpoint with resume state"),
        "folder has checkpoints": (["--out", str(finished_run)], "already holds checkpoints"),
    }


@pytest.mark.parametrize("case", ["attention size", "zero steps", "no cuda", "unknown data", "nothing to resume",
                                  "folder has checkpoints"])
def test_impossible_flags_exit_with_code_2_and_a_one_line_error(tmp_path, finished_run, capsys, case):
    if case == "no cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv, reason = error_cases(tmp_path, finished_run)[case]
    before = sorted(p.name for p in finished_run.iterdir())
    with pytest.raises(SystemExit) as exit_:
        main([*TINY_FLAGS, *argv])  # a later flag wins, e.g. --device cuda over --device cpu
    assert exit_.value.code == 2
    assert_one_line_error(capsys.readouterr().err, reason)
    assert sorted(p.name for p in finished_run.iterdir()) == before  # nothing was overwritten


def test_the_real_process_exits_2_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.train", "--steps", "0", "--out", str(tmp_path)],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "steps must be at least 1 (got 0)")


def test_sample_grids_show_ema_G_on_one_fixed_set_of_latents_eight_columns_at_the_interval(finished_run_and_samples):
    finished_run, sampled = finished_run_and_samples
    samples = finished_run / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["step_0000002.png", "step_0000003.png"]  # + final step
    grid = np.asarray(Image.open(samples / "step_0000003.png").convert("RGB"))
    tile, padding, columns = 32, 1, 8
    side = columns * (tile + padding) + padding  # 64 samples: 8 x 8 tiles with 1-pixel gaps
    assert grid.shape == (side, side, 3)
    for line in range(0, side, tile + padding):
        assert (grid[:, line] == 255).all() and (grid[line, :] == 255).all()
    # Whatever latents the trainer draws, they are the same 64 at every sample step: grids show progress.
    assert [call["step"] for call in sampled] == [2, 3] and sampled[0]["labels"] is None
    z = sampled[0]["z"]
    assert z.shape == (64, 16) and torch.equal(sampled[1]["z"], z)
    contents = read_checkpoint(finished_run / "step_0000003.safetensors")
    generator, generator_ema, _ = build_networks_from(contents)
    with torch.no_grad():
        expected, raw = to_uint8_images(generator_ema(z)), to_uint8_images(generator.eval()(z))
    assert not np.array_equal(expected, raw)  # so the tiles below can only be EMA-G's
    for index in (0, 7, 8, 63):
        top, left = 1 + (index // columns) * (tile + padding), 1 + (index % columns) * (tile + padding)
        assert np.array_equal(grid[top : top + tile, left : left + tile], expected[index]), index
    earlier = np.asarray(Image.open(samples / "step_0000002.png").convert("RGB"))
    assert not np.array_equal(earlier, grid)




def test_a_short_conditional_run_trains_both_networks_on_the_labels_of_the_data(tmp_path):
    out = tmp_path / "run"
    run(out, 2, "--conditional", "--checkpoint-every", "2", "--sample-every", "2", "--history-every", "1")
    first = read_checkpoint(out / "step_0000000.safetensors")
    last = read_checkpoint(out / "step_0000002.safetensors")
    assert last.config.num_classes == len(FACE_CLASSES) and last.dataset == "faces"
    # The labels reach both losses: only they select rows of D's projection and of G's class-conditional BN.
    for part, key in (("D", "embedding.parametrizations.weight.original"),
                      ("G", "stages.0.norm1.gain.parametrizations.weight.original")):
        assert not torch.equal(first.state_dicts[part][key], last.state_dicts[part][key]), part
    model = sagan_viz.load_checkpoint(out / "step_0000002.safetensors", device="cpu")
    images = [model.generate(seed=5, label=label).image_tensor for label in range(len(FACE_CLASSES))]
    assert all((images[0] - other).abs().max() > 1e-4 for other in images[1:])  # one z, a different face per class
    assert (out / "samples" / "step_0000002.png").is_file()

"""`python -m sagan_viz.figure` writes the figure from a checkpoint; bad input is one line and exit code 2."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sagan_viz.checkpoint import save_checkpoint
from sagan_viz.config import ModelConfig
from sagan_viz.figure import build_parser, main
from sagan_viz.networks import build_networks

REPOSITORY = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, one_thread) -> Path:
    """An untrained 32x32 SAGAN (attention at 16x16 in G and D), saved as a real checkpoint file."""
    torch.manual_seed(0)
    config = ModelConfig(g_channels=16, d_channels=16, z_dim=16)
    generator, discriminator = build_networks(config)
    return save_checkpoint(
        tmp_path_factory.mktemp("run") / "step_0000010.safetensors", config=config, generator=generator,
        generator_ema=generator, discriminator=discriminator, step=10, wall_time_s=1.0, dataset="test", history={},
    )


def run_with_error(argv, capsys) -> str:
    """Run main(argv), expect exit code 2, and return the error line (the last line of stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    last = error.strip().splitlines()[-1]
    assert last.startswith("python -m sagan_viz.figure: error: ")
    return last


def test_cli_writes_the_figure_png(checkpoint, tmp_path, capsys):
    out = tmp_path / "fig.png"
    main(["--checkpoint", str(checkpoint), "--seed", "7", "--query", "12,20", "--query", "5,9",
          "--layer", "D.attn0", "--scale", "4", "--weights", "raw", "--device", "cpu", "--out", str(out)])
    with Image.open(out) as figure:
        assert figure.format == "PNG"
        width, height = figure.size
        assert width >= 3 * 32 * 4 and height >= 32 * 4  # the image and two maps, 32 px x scale 4 each
        assert np.asarray(figure.convert("RGB")).std() > 10  # something was drawn
    assert "wrote" in capsys.readouterr().out


def test_cli_without_queries_or_layer_draws_the_first_layer(checkpoint, tmp_path, capsys):
    out = tmp_path / "image.png"
    main(["--checkpoint", str(checkpoint), "--device", "cpu", "--out", str(out)])
    assert "G.attn0" in capsys.readouterr().out and out.is_file()


def test_query_outside_the_image_is_refused(checkpoint, tmp_path, capsys):
    error = run_with_error(["--checkpoint", str(checkpoint), "--device", "cpu", "--query", "40,3",
                            "--out", str(tmp_path / "x.png")], capsys)
    assert "outside the 32x32 image" in error


def test_unknown_layer_is_refused_with_the_layers_listed(checkpoint, tmp_path, capsys):
    error = run_with_error(["--checkpoint", str(checkpoint), "--device", "cpu", "--layer", "G.attn3",
                            "--out", str(tmp_path / "x.png")], capsys)
    assert "'G.attn3'" in error and "G.attn0, D.attn0" in error


@pytest.mark.parametrize("query, expected", [("12", "malformed query '12'"), ("a,b", "malformed query 'a,b'"),
                                             ("1,2,3", "expected X,Y")])
def test_malformed_query_is_refused(tmp_path, capsys, query, expected):
    error = run_with_error(["--checkpoint", "any.safetensors", "--query", query, "--out", "x.png"], capsys)
    assert expected in error


def test_more_than_five_queries_is_refused(capsys):
    argv = ["--checkpoint", "any.safetensors", "--out", "x.png"] + ["--query", "1,1"] * 6
    assert "at most 5 --query points" in run_with_error(argv, capsys)


def test_missing_and_damaged_checkpoints_are_named(tmp_path, capsys):
    error = run_with_error(["--checkpoint", str(tmp_path / "none.safetensors"), "--out", "x.png"], capsys)
    assert "none.safetensors: no such checkpoint file" in error
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    error = run_with_error(["--checkpoint", str(damaged), "--out", "x.png"], capsys)
    assert "damaged.safetensors" in error and "not a safetensors file" in error


def test_scale_must_be_positive(capsys):
    assert ">= 1" in run_with_error(["--checkpoint", "a", "--out", "b", "--scale", "0"], capsys)


def test_help_explains_every_flag():
    text = build_parser().format_help()
    for flag in ("--checkpoint", "--seed", "--label", "--query", "--layer", "--weights", "--scale", "--peaks",
                 "--device", "--out"):
        assert flag in text
    assert "generated-image pixels" in text


def test_module_entry_point_exits_2_without_a_traceback(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"123")
    result = subprocess.run(
        [sys.executable, "-m", "sagan_viz.figure", "--checkpoint", str(garbage), "--out", str(tmp_path / "f.png")],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.endswith("garbage.safetensors: file is too short (3 bytes) to be a checkpoint")

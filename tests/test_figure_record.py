"""Every exported figure comes with a record that draws the same PNG again, byte for byte, from the same weights."""
from __future__ import annotations

import json
import shutil

import pytest

from sagan_viz.figure import main
from sagan_viz.figure_record import FigureRecord, checkpoint_digest


def error_of(arguments, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(arguments)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_a_recorded_figure_is_drawn_again_byte_for_byte(tiny_checkpoint, tmp_path):
    first = tmp_path / "figure.png"
    main(["--checkpoint", str(tiny_checkpoint), "--seed", "4", "--query", "3,7", "--query", "20,28",
          "--layer", "D.attn0", "--scale", "5", "--peaks", "2", "--weights", "raw", "--device", "cpu",
          "--out", str(first)])
    record = json.loads((tmp_path / "figure.json").read_text())
    assert record["checkpoint_sha256"] == checkpoint_digest(tiny_checkpoint)
    assert (record["seed"], record["layer"], record["queries"], record["scale"], record["weights"]) == \
        (4, "D.attn0", [[3.0, 7.0], [20.0, 28.0]], 5, "raw")
    again = tmp_path / "again.png"
    main(["--from", str(tmp_path / "figure.json"), "--device", "cpu", "--out", str(again)])
    assert again.read_bytes() == first.read_bytes()


def test_a_biggan_figure_with_class_and_truncation_is_drawn_again(tiny_biggan_deep, tmp_path):
    first = tmp_path / "dog.png"
    main(["--checkpoint", str(tiny_biggan_deep), "--class", "golden retriever", "--truncation", "0.3",
          "--seed", "9", "--query", "16,16", "--device", "cpu", "--out", str(first)])
    record = json.loads((tmp_path / "dog.json").read_text())
    assert (record["family"], record["label"], record["truncation"]) == ("biggan-deep", 207, 0.3)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_biggan_deep, moved)
    again = tmp_path / "again.png"
    main(["--from", str(tmp_path / "dog.json"), "--checkpoint", str(moved), "--device", "cpu", "--out", str(again)])
    assert again.read_bytes() == first.read_bytes()


def test_other_weights_or_a_damaged_record_are_refused(tiny_checkpoint, tmp_path, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--query", "3,3", "--device", "cpu", "--out", str(tmp_path / "f.png")])
    changed = tmp_path / "changed.safetensors"
    data = bytearray(tiny_checkpoint.read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    changed.write_bytes(bytes(data))
    message = error_of(["--from", str(tmp_path / "f.json"), "--checkpoint", str(changed), "--out",
                        str(tmp_path / "g.png")], capsys)
    assert "changed.safetensors" in message and "not the same weights" in message
    assert not (tmp_path / "g.png").exists()
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert "not a sagan-viz figure record" in error_of(["--from", str(tmp_path / "bad.json"), "--out",
                                                       str(tmp_path / "h.png")], capsys)
    assert "give --checkpoint" in error_of(["--out", str(tmp_path / "i.png")], capsys)


def test_a_record_names_either_a_seed_or_a_z():
    record = FigureRecord(checkpoint="c", checkpoint_sha256="0" * 64, family="f", layer="G.attn0", queries=((1, 2),),
                          seed=None, z=(0.5, -1.0))
    assert FigureRecord.from_json(record.to_json(), "r").z == (0.5, -1.0)
    both = json.loads(record.to_json()) | {"seed": 3}
    with pytest.raises(ValueError, match="either a seed or a z"):
        FigureRecord.from_json(json.dumps(both), "r.json")

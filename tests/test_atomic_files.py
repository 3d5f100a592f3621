"""Atomic writes: a crash at any moment leaves the old file or the new one, and no temporary."""
import os

import pytest

from sagan_viz.atomic_files import write_atomically


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

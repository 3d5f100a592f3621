"""Files written so that a crash at any moment leaves the old or the new one, never half of either.

Used for checkpoints, resume sidecars and feature nets; a run removes the temporaries an interrupted
write left behind (remove_interrupted_writes).
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

# Tests only: "N:CUE_FILE" makes the N-th write of a file whose name holds ".safetensors" stop halfway (half
# the bytes written, not renamed), announce itself in CUE_FILE and wait, so that a kill provably lands mid-write.
HOLD_WRITE_VARIABLE = "SAGAN_VIZ_HOLD_WRITE"
_writes_seen = 0


def _hold_if_cued(path: Path, temporary: str, stream) -> None:
    global _writes_seen
    cue = os.environ.get(HOLD_WRITE_VARIABLE)
    if not cue or ".safetensors" not in path.name:
        return
    _writes_seen += 1
    number, _, cue_file = cue.partition(":")
    if _writes_seen == int(number):
        stream.flush()
        Path(cue_file).write_text(temporary)
        while True:  # until killed
            time.sleep(1)


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path so that a crash at any moment leaves either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data[: len(data) // 2])
            _hold_if_cued(path, temporary, stream)
            stream.write(data[len(data) // 2 :])
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


# write_atomically's temporaries: ".{name}.{8 random characters}.tmp" beside the target.
TEMPORARY_PATTERN = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def remove_interrupted_writes(folder: str | Path, names: re.Pattern[str]) -> list[Path]:
    """Delete write_atomically's temporaries for targets whose names match `names` (left by a SIGKILL)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = TEMPORARY_PATTERN.match(path.name)
        if match and names.fullmatch(match["name"]) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed

"""One temporary folder per process, gone after exit, Ctrl+C, SIGTERM or SIGHUP (no Gradio here: enter it first)."""
from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# SIGTERM (kill, systemd, docker stop) and SIGHUP (the terminal closed) end the process as Ctrl+C does;
# by default Python would die at once and leave the folder behind.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupt(signum, frame):
    """A stop signal handled as Ctrl+C: Gradio's main-thread wait then closes the server and returns."""
    raise KeyboardInterrupt


@contextmanager
def private_temp_folder(prefix: str = "sagan-viz-") -> Iterator[Path]:
    """Every temporary file of this process in one new folder, removed on leaving (normally, by Ctrl+C, SIGTERM
    or SIGHUP).

    tempfile's default folder points there meanwhile, so Gradio's uploads and cache (gettempdir()/gradio,
    unless GRADIO_TEMP_DIR names another) and the studio's session files land in it. Call from the main
    thread (signal handlers).
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    previous_tempdir, tempfile.tempdir = tempfile.tempdir, str(root)
    previous = {number: signal.signal(number, _interrupt) for number in STOP_SIGNALS}
    previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    try:
        yield root
    finally:
        for number in previous:  # a second signal must not cut the removal short
            signal.signal(number, signal.SIG_IGN)
        try:
            tempfile.tempdir = previous_tempdir
            shutil.rmtree(root, ignore_errors=True)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

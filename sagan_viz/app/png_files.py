"""The PNG files the studio hands Gradio: written once, under names nobody can guess, the newest kept."""
from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ..figure_record import record_path
from ..imaging import encode_png

# The page links to these files directly, so a file must outlive the view showing it: a figure's download
# button still points at it after later clicks. The studio keeps far fewer per session (session_files.py).
KEPT_FILES = 1000
NAME_BYTES = 16  # 128 random bits per file name: a served file cannot be found by trying names


class PngFiles:
    """Writes images as PNG files in one folder of its own and deletes all but the newest `keep`.

    The app returns paths instead of pictures so that Gradio does not encode the images again, and so
    that the figure and its download button share one file. Names are random (secrets.token_urlsafe): the
    folder is served to anyone who has a file's URL, so a URL must be impossible to guess. Callbacks run in
    threads, hence the lock. Images are encoded one after the other: two encoder threads saved 2 ms per
    click alone, but made a click in the browser 8 ms slower (the threads took the CPU from the browser on
    this 2-core machine; benchmarks/README.md).
    """

    def __init__(self, folder: str | Path | None = None, keep: int = KEPT_FILES) -> None:
        self.keep = keep
        self._folder = Path(folder) if folder is not None else None
        self._written: deque[Path] = deque()
        self._made = False
        self._lock = threading.Lock()

    def folder(self) -> Path:
        """The folder the files go to (made on first use; without one given, a temporary one removed at exit)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="sagan-viz-figures-"))
                atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
            if not self._made:
                self._folder.mkdir(parents=True, exist_ok=True)
                self._made = True
            return self._folder

    def write(self, image: Image.Image | np.ndarray, name: str = "figure") -> str:
        """Write image as `<name>-<random>.png` and return its path; the oldest files past `keep` are deleted,
        with the figure record written beside each (figure_record.record_path)."""
        if isinstance(image, Image.Image):
            image = image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy an RGB one too
        pixels = np.asarray(image)
        path = self.folder() / f"{name}-{secrets.token_urlsafe(NAME_BYTES)}.png"
        path.write_bytes(encode_png(np.ascontiguousarray(pixels)))
        with self._lock:
            self._written.append(path)
            stale = [self._written.popleft() for _ in range(max(0, len(self._written) - self.keep))]
        for old in stale:
            old.unlink(missing_ok=True)
            record_path(old).unlink(missing_ok=True)
        return str(path)


def served_png_files() -> PngFiles:
    """A PngFiles whose folder Gradio serves as it is: no hash and copy of each file into its cache."""
    files = PngFiles()
    gr.set_static_paths([files.folder()])
    return files

"""The PNG files the studio hands Gradio: written once, in a temporary folder that keeps only the newest."""
from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ..imaging import encode_png

# The page links to these files directly (served_png_files), so a file must outlive the view showing it:
# a figure's download button still points at it after later clicks. ~100 KB a click: at most ~35 MB a tab.
KEPT_FILES = 1000


class PngFiles:
    """Writes images as PNG files in one folder of its own and deletes all but the newest `keep`.

    The app returns paths instead of pictures so that Gradio does not encode the images again, and so
    that the figure and its download button share one file. One instance per tab: its
    sessions' callbacks run in threads, hence the lock. Images are encoded one after the other: two
    encoder threads saved 2 ms per click alone, but made a click in the browser 8 ms slower (the threads
    took the CPU from the browser on this 2-core machine; benchmarks/README.md).
    """

    def __init__(self, folder: str | Path | None = None, keep: int = KEPT_FILES) -> None:
        self.keep = keep
        self._folder = Path(folder) if folder is not None else None
        self._written: deque[Path] = deque()
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def folder(self) -> Path:
        """The folder the files go to (a fresh temporary one, made on first use and removed at exit)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="sagan-viz-figures-"))
                atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
            return self._folder

    def write(self, image: Image.Image | np.ndarray, name: str = "figure") -> str:
        """Write image as `<name>-<number>.png` and return its path; the oldest files past `keep` are deleted."""
        pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
        path = self.folder() / f"{name}-{next(self._numbers):09d}.png"
        path.write_bytes(encode_png(np.ascontiguousarray(pixels)))
        with self._lock:
            self._written.append(path)
            stale = [self._written.popleft() for _ in range(max(0, len(self._written) - self.keep))]
        for old in stale:
            old.unlink(missing_ok=True)
        return str(path)


def served_png_files() -> PngFiles:
    """A PngFiles whose folder Gradio serves as it is: no hash and copy of each file into its cache."""
    files = PngFiles()
    gr.set_static_paths([files.folder()])
    return files

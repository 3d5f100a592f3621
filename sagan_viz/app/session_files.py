"""Files the studio keeps for one session: its figures (served) and its uploads (never served).

Each session gets folders of random names under one root of this app; a session's files are removed when
it ends (Gradio's unload: the page closed or reloaded), when it has been idle for long, and all of them
when the process exits. One session's clicks never delete another session's files.
"""
from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder, is_in_or_equal

from .errors import register_private_folder
from .png_files import PngFiles

LOCAL_SESSION = "local"  # callbacks called directly (tests, benchmarks) come without a gr.Request
KEPT_PNGS = 30  # per session and tab: the last ~10 views (a view writes 3 to 5 files, ~100 KB a click)
KEPT_UPLOADS = 1  # per session: the checkpoint list offers only the newest upload, so older ones are unreachable
MAX_SESSIONS = 256  # sessions holding files at once; the least recently active go first (~2 MB each)
IDLE_SECONDS = 6 * 3600  # a session without a click for this long is dropped (API clients send no unload)


def session_of(request: gr.Request | None) -> str:
    """The Gradio session a callback serves (one browser tab), or LOCAL_SESSION without a request."""
    return getattr(request, "session_hash", None) or LOCAL_SESSION


@dataclass
class SessionFolder:
    """What one session holds: a folder of a random name in each area, and when it was last used."""

    name: str
    pngs: dict[str, PngFiles] = field(default_factory=dict)  # per tab
    uploads: deque[Path] = field(default_factory=deque)  # folders of kept uploads, oldest first
    last_used: float = field(default_factory=time.monotonic)


class StudioFiles:
    """The session folders of one app: `<root>/figures/<session>/<tab>/` (served) and `<root>/uploads/<session>/`.

    Folder and file names are random, never the client's session id, so no request can name a path.
    """

    def __init__(self, root: str | Path | None = None, keep_pngs: int = KEPT_PNGS, keep_uploads: int = KEPT_UPLOADS,
                 max_sessions: int = MAX_SESSIONS, idle_seconds: float = IDLE_SECONDS,
                 on_upload_removed=None) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="sagan-viz-files-"))
        self.figures, self.uploads = self.root / "figures", self.root / "uploads"
        for folder in (self.figures, self.uploads):
            folder.mkdir(parents=True, exist_ok=True)
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)
        gr.set_static_paths([self.figures])  # only the figures: uploads are never served
        register_private_folder(self.root)  # error messages name its files by their own names
        self.keep_pngs, self.keep_uploads = keep_pngs, keep_uploads
        self.max_sessions, self.idle_seconds = max_sessions, idle_seconds
        self._sessions: OrderedDict[str, SessionFolder] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self.on_upload_removed = on_upload_removed  # told each removed upload's path (the model cache forgets it)

    def write_png(self, request: gr.Request | None, tab: str, image, name: str) -> str:
        """Write image as a PNG of this session and tab; returns its path (served, unguessable)."""
        session = self._session(session_of(request))
        with self._lock:
            pngs = session.pngs.get(tab)
            if pngs is None:
                pngs = session.pngs[tab] = PngFiles(self.figures / session.name / tab, keep=self.keep_pngs)
        return pngs.write(image, name)

    def keep_upload(self, request: gr.Request | None, path: str | Path) -> Path:
        """Move a file Gradio stored for an upload into this session's own folder, under its own name.

        A path outside Gradio's upload folder (the callback called directly) is used where it is.
        """
        path = Path(path)
        if not is_in_or_equal(str(path), get_upload_folder()):
            return path
        session = self._session(session_of(request))
        folder = self.uploads / session.name / secrets.token_urlsafe(9)
        folder.mkdir(parents=True)
        kept = Path(shutil.move(path, folder / path.name))
        if path.parent.resolve() != Path(get_upload_folder()).resolve():
            shutil.rmtree(path.parent, ignore_errors=True)  # Gradio's folder for it (named by its hash)
        with self._lock:
            session.uploads = deque(old for old in session.uploads if old.exists())  # minus discarded ones
            session.uploads.append(folder)
            stale = [session.uploads.popleft() for _ in range(max(0, len(session.uploads) - self.keep_uploads))]
        for old in stale:
            self._forget_uploads_in(old)
            shutil.rmtree(old, ignore_errors=True)
        return kept

    def discard_upload(self, path: str | Path) -> None:
        """Remove an upload that failed its checks (it would only take disk space)."""
        path = Path(path)
        if is_in_or_equal(str(path), str(self.uploads)):
            shutil.rmtree(path.parent, ignore_errors=True)
        elif is_in_or_equal(str(path), get_upload_folder()):
            path.unlink(missing_ok=True)

    def end_session(self, request: gr.Request | None = None) -> None:
        """Remove every file of the session (Gradio calls this on unload: the page was closed or reloaded)."""
        with self._lock:
            session = self._sessions.pop(session_of(request), None)
        if session is not None:
            self._remove(session)

    def session_count(self) -> int:
        """How many sessions hold files now."""
        with self._lock:
            return len(self._sessions)

    def _session(self, key: str) -> SessionFolder:
        """The session's folder record (made on first use); drops idle and surplus sessions on the way."""
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = SessionFolder(secrets.token_urlsafe(12))
            session.last_used = now
            self._sessions.move_to_end(key)
            dropped = []
            while self._sessions:
                oldest_key, oldest = next(iter(self._sessions.items()))
                if len(self._sessions) <= self.max_sessions and now - oldest.last_used <= self.idle_seconds:
                    break
                dropped.append(self._sessions.pop(oldest_key))
        for old in dropped:
            self._remove(old)
        return session

    def _remove(self, session: SessionFolder) -> None:
        for folder in list(session.uploads):
            self._forget_uploads_in(folder)
        for area in (self.figures, self.uploads):
            shutil.rmtree(area / session.name, ignore_errors=True)

    def _forget_uploads_in(self, folder: Path) -> None:
        if self.on_upload_removed is None or not Path(folder).is_dir():
            return
        for upload in Path(folder).iterdir():
            self.on_upload_removed(upload)

    def session_folder(self, request: gr.Request | None, tab: str) -> Path:
        """A served folder of this session for a tab's other files (e.g. the timeline's GIF); removed with it."""
        folder = self.figures / self._session(session_of(request)).name / tab
        folder.mkdir(parents=True, exist_ok=True)
        return folder

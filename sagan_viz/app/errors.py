"""Turn failures into messages a user can act on; never a traceback or a server path on the page."""
from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from ..checkpoint import CheckpointError
from ..config import ConfigError

logger = logging.getLogger("sagan_viz.app")

USER_ERRORS = (CheckpointError, ConfigError, ValueError)
PATH_END = r"[^\s'\"`,;:()<>\[\]]*"  # a path runs to the first of these (a file name's rest is kept as text)

_private_folders: set[str] = set()


def register_private_folder(folder: str | Path) -> None:
    """Files under folder are named by their own names in messages (the studio's temporary folders)."""
    _private_folders.update({str(folder), str(Path(folder).resolve())})


def without_private_paths(message: str) -> str:
    """The message with every path under a private folder (and Gradio's upload folder) cut to its file name.

    An upload's error then names the file as the user called it, never where the server keeps it.
    """
    upload_folder = get_upload_folder()
    folders = _private_folders | {upload_folder, str(Path(upload_folder).resolve())}
    for folder in sorted(folders, key=len, reverse=True):
        pattern = re.escape(folder.rstrip("/\\")) + r"[/\\]" + PATH_END
        message = re.sub(pattern, lambda match: Path(match.group()).name, message)
    return message


def shown_to_user(callback):
    """Wrap a Gradio callback: known problems become a gr.Error with their message, the rest a short notice."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except gr.Error as error:
            message = without_private_paths(str(error.message))
            if message == error.message:
                raise
            raise gr.Error(message, print_exception=False) from None
        except USER_ERRORS as error:
            raise gr.Error(without_private_paths(str(error)), print_exception=False) from None
        except Exception as error:  # the page gets one line; the terminal gets the traceback
            logger.exception("callback %s failed", callback.__name__)
            raise gr.Error(
                f"Something went wrong ({type(error).__name__}); the details are in the terminal.",
                print_exception=False,
            ) from None

    return wrapper

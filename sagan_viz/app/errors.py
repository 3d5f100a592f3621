"""Turn failures into messages a user can act on; never a traceback on the page."""
from __future__ import annotations

import functools
import logging

import gradio as gr

from ..checkpoint import CheckpointError
from ..config import ConfigError

logger = logging.getLogger("sagan_viz.app")

USER_ERRORS = (CheckpointError, ConfigError, ValueError)


def shown_to_user(callback):
    """Wrap a Gradio callback: known problems become a gr.Error with their message, the rest a short notice."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # the page gets one line; the terminal gets the traceback
            logger.exception("callback %s failed", callback.__name__)
            raise gr.Error(
                f"Something went wrong ({type(error).__name__}); the details are in the terminal.",
                print_exception=False,
            ) from None

    return wrapper

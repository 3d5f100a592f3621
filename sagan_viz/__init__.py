"""sagan-viz: see inside self-attention GANs.

Notebook API:
    import sagan_viz
    model = sagan_viz.load_checkpoint("checkpoints/faces32-sagan/step_0010750.safetensors")
    result = model.generate(seed=7)
    result.image                      # (H, W, 3) uint8
    result.attention["G.attn0"]       # beta: (N_query, N_key), rows sum to 1

The names below are imported on first use (PEP 562), so that `import sagan_viz.devices` (launch.py's
--help) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .checkpoint import CheckpointError
    from .config import ModelConfig
    from .families import LoadedModel, load_checkpoint
    from .inspect import Generation

_HOMES = {  # public name -> the module that defines it
    "CheckpointError": ".checkpoint",
    "Generation": ".inspect",
    "LoadedModel": ".families",
    "ModelConfig": ".config",
    "load_checkpoint": ".families",
}
__all__ = ["CheckpointError", "Generation", "LoadedModel", "ModelConfig", "load_checkpoint"]


def __getattr__(name: str):
    """The notebook API's names, imported when first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """What the module offers, the lazy names included."""
    return sorted({*globals(), *__all__})

"""sagan-viz: see inside self-attention GANs.

Notebook API:
    import sagan_viz
    model = sagan_viz.load_checkpoint("checkpoints/faces32-sagan/step_0010750.safetensors")
    result = model.generate(seed=7)
    result.image                      # (H, W, 3) uint8
    result.attention["G.attn0"]       # beta: (N_query, N_key), rows sum to 1
"""
from .checkpoint import CheckpointError
from .config import ModelConfig
from .families import LoadedModel, load_checkpoint
from .inspect import Generation

__all__ = ["CheckpointError", "Generation", "LoadedModel", "ModelConfig", "load_checkpoint"]

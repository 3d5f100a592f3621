"""The controls several tabs share: which checkpoint, seed, generator weights and attention layer."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .catalog import CheckpointEntry

WEIGHT_CHOICES = [("EMA-G (as sampled in the paper)", "ema"), ("G (raw weights of the last step)", "raw")]


def checkpoint_choices(entries: list[CheckpointEntry]) -> list[tuple[str, str]]:
    """Dropdown (label, value) pairs."""
    return [(entry.label, str(entry.path)) for entry in entries]


@dataclass(frozen=True)
class GenerationControls:
    """The components generation_controls made, for a tab to wire into its events."""

    checkpoint: gr.Dropdown
    seed: gr.Number
    weights: gr.Radio
    layer: gr.Dropdown
    upload: gr.File | None  # only where the tab accepts uploads


def generation_controls(prefix: str, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                        layer_label: str = "Attention layer", with_upload: bool = False) -> GenerationControls:
    """Checkpoint (and, with_upload, a file upload beside it), seed, weights and layer, in the current column;
    elem_ids are <prefix>-checkpoint, -upload, -seed and -layer."""
    checkpoint = gr.Dropdown(checkpoint_choices(entries), value=str(default.path) if default else None,
                             label="Checkpoint", elem_id=f"{prefix}-checkpoint")
    upload = None
    if with_upload:
        upload = gr.File(label="…or upload a .safetensors checkpoint", file_types=[".safetensors"],
                         type="filepath", elem_id=f"{prefix}-upload")
    seed = gr.Number(value=7, precision=0, label="Seed", elem_id=f"{prefix}-seed")
    weights = gr.Radio(WEIGHT_CHOICES, value="ema", label="Generator weights")
    layer = gr.Dropdown([], label=layer_label, elem_id=f"{prefix}-layer")
    return GenerationControls(checkpoint, seed, weights, layer, upload)

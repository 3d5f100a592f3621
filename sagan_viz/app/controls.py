"""The controls several tabs share: which checkpoint, seed, class, truncation, generator weights and layer."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..families import LoadedModel
from ..inspect import Generation
from .catalog import CheckpointEntry, entry_for

WEIGHT_CHOICES = [("EMA-G (as sampled in the paper)", "ema"), ("G (raw weights of the last step)", "raw"),
                  ("G, batch norm in train mode (as heykeetae's trainer samples)", "train-bn")]
SEED_CLASS = ""  # the class choice meaning "the class the seed draws"
DEFAULT_TRUNCATION = 0.4
# Classes the picker lists at once: 1,001 choices in each of three dropdowns made every click on the page
# 35 ms slower in the browser (benchmarks/README.md); typing narrows the list to the classes that match.
SHOWN_CLASSES = 30


def checkpoint_choices(entries: list[CheckpointEntry]) -> list[tuple[str, str]]:
    """Dropdown (label, value) pairs."""
    return [(entry.label, str(entry.path)) for entry in entries]


def class_choices(entry: CheckpointEntry | None, typed: str = "") -> list[tuple[str, str]]:
    """(label, value) pairs of the model's classes whose label contains typed (any case), at most SHOWN_CLASSES;
    "the seed's class" comes first, always (Gradio refuses a dropdown value outside its choices, even hidden)."""
    seed_class = [("the seed's class (seed mod classes)", SEED_CLASS)]
    if entry is None or not entry.num_classes:
        return seed_class
    names = entry.class_names or tuple(f"class {index}" for index in range(entry.num_classes))
    typed = typed.strip().lower()
    labels = ((f"{index} · {name}", str(index)) for index, name in enumerate(names))
    matching = [choice for choice in labels if typed in choice[0].lower()]
    return seed_class + matching[:SHOWN_CLASSES]


def model_option_updates(entry: CheckpointEntry | None) -> tuple[dict, dict, dict, dict]:
    """Class picker, truncation slider, weights radio and class search as this checkpoint's family allows."""
    classes = class_choices(entry)
    truncation = entry.truncation if entry is not None else None
    weights = [choice for choice in WEIGHT_CHOICES if entry is None or choice[1] in entry.weight_choices]
    conditional = entry is not None and entry.conditional
    return (
        gr.update(choices=classes, value=SEED_CLASS, visible=conditional),
        gr.update(visible=truncation is not None,
                  value=truncation.default if truncation is not None else DEFAULT_TRUNCATION),
        gr.update(choices=weights, value=weights[0][1] if weights else "ema"),
        gr.update(value="", visible=conditional),
    )


def generate_from_controls(model: LoadedModel, seed, class_choice, truncation, weights: str) -> Generation:
    """model.generate with what the controls say; controls a family lacks are ignored, not errors."""
    label = None
    if model.conditional and class_choice not in (None, SEED_CLASS):
        label = model.class_for_text(str(class_choice).split(" · ")[0])  # an index, or a name typed in full
    if weights not in model.weight_choices:
        weights = model.weight_choices[0]
    truncation = None if model.truncation is None or truncation is None else float(truncation)
    return model.generate(seed=int(seed or 0), label=label, truncation=truncation, weights=weights)


@dataclass(frozen=True)
class GenerationControls:
    """The components generation_controls made, for a tab to wire into its events."""

    checkpoint: gr.Dropdown
    seed: gr.Number
    class_choice: gr.Dropdown
    truncation: gr.Slider
    weights: gr.Radio
    layer: gr.Dropdown
    upload: gr.File | None  # only where the tab accepts uploads
    class_search: gr.Textbox | None = None  # typing here narrows class_choice

    @property
    def inputs(self) -> list:
        """What generate_from_controls reads, in its order after the model: checkpoint first."""
        return [self.checkpoint, self.seed, self.class_choice, self.truncation, self.weights]


def generation_controls(prefix: str, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                        layer_label: str = "Attention layer", with_upload: bool = False) -> GenerationControls:
    """Checkpoint (and, with_upload, a file upload beside it), seed, class, truncation, weights and layer, in
    the current column; elem_ids are <prefix>-checkpoint, -upload, -seed, -class, -truncation and -layer."""
    checkpoint = gr.Dropdown(checkpoint_choices(entries), value=str(default.path) if default else None,
                             label="Checkpoint", elem_id=f"{prefix}-checkpoint")
    upload = None
    if with_upload:
        upload = gr.File(label="…or upload a checkpoint file (.safetensors, or a heykeetae, StudioGAN, mmgeneration or "
                         "BigGAN-PyTorch .pth; a BigGAN-deep folder opens with launch.py --checkpoint DIR)",
                         file_types=[".safetensors", ".pth", ".pt"], type="filepath",
                         elem_id=f"{prefix}-upload")
    seed = gr.Number(value=7, precision=0, label="Seed", elem_id=f"{prefix}-seed")
    classes = class_choices(default)
    conditional = default is not None and default.conditional
    class_search = gr.Textbox(label="Find a class (part of its name or number)", placeholder="e.g. retriever",
                              visible=conditional, elem_id=f"{prefix}-class-search")
    class_choice = gr.Dropdown(classes, value=SEED_CLASS, label="Class", allow_custom_value=True,
                               visible=conditional, elem_id=f"{prefix}-class")
    truncation_range = default.truncation if default is not None else None
    truncation = gr.Slider(0.02, 1.0, step=0.02, label="Truncation (smaller: more typical, less varied)",
                           value=truncation_range.default if truncation_range else DEFAULT_TRUNCATION,
                           visible=truncation_range is not None, elem_id=f"{prefix}-truncation")
    weights = gr.Radio(WEIGHT_CHOICES if default is None else
                       [choice for choice in WEIGHT_CHOICES if choice[1] in default.weight_choices],
                       value="ema", label="Generator weights")
    layer = gr.Dropdown([], label=layer_label, elem_id=f"{prefix}-layer")
    controls = GenerationControls(checkpoint, seed, class_choice, truncation, weights, layer, upload, class_search)
    checkpoint.input(options_for_checkpoint, [checkpoint], [class_choice, truncation, weights, class_search],
                     show_progress="hidden")
    # always_last: keys typed while an update is on its way still count (the default drops them)
    class_search.input(classes_matching, [checkpoint, class_search], [class_choice], show_progress="hidden",
                       trigger_mode="always_last")
    return controls


def classes_matching(checkpoint: str | None, typed: str):
    """The class list narrowed to the labels that hold what was typed; the first match is chosen."""
    try:
        entry = entry_for(checkpoint) if checkpoint else None
    except Exception:  # an unreadable checkpoint: the generate button says why
        return gr.skip()
    choices = class_choices(entry, typed or "")
    first_match = choices[1][1] if len(choices) > 1 and (typed or "").strip() else SEED_CLASS
    return gr.update(choices=choices, value=first_match)


def options_for_checkpoint(checkpoint: str | None):
    """Class picker, truncation and weights for a newly chosen checkpoint (unchanged when it cannot be read)."""
    try:
        entry = entry_for(checkpoint) if checkpoint else None
    except Exception:  # the generate button reports a bad file in words; here nothing is shown
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return model_option_updates(entry)

"""The Attribution tab: click a query, see beta beside Captum's attribution of its pixels to the layer's input."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gradio as gr

from ..attribution import (
    AttributionResult,
    AttributionSummary,
    attribute_query,
    discriminator_attribution,
    discriminator_figure,
)
from ..inspect import Generation
from ..layer_names import network_of
from .catalog import CheckpointEntry, ModelCache
from .controls import generate_from_controls, generation_controls
from .errors import shown_to_user
from .views import clickable_image, clicked_pixel

METHOD_CHOICES = [
    ("Gradient × activation (one backward pass; D: saliency)", "gradient_x_activation"),
    ("Integrated gradients (32 steps from z = 0; D: from a black image)", "integrated_gradients"),
]
EXPLANATION = (
    "Click a pixel: its feature cell *j* is the query. Beside its β row (*where the layer looks*) comes the "
    "attribution (Captum) of the generated pixels under that cell, summed over RGB, to the layer's **input** x "
    "(*what changes the output there*), per cell as Σ over channels of |attribution|. It sees two routes: "
    "γ·o (attention) and the residual x that the next convolutions read around *j*. With **γ = 0** only the "
    "second is left, the receptive field; what lies beyond it can only have come through attention."
)


@dataclass
class AttributionState:
    """What one user sees in the Attribution tab."""

    checkpoint: str | None = None
    generation: Generation | None = None
    query: tuple[float, float] | None = None  # clicked pixel (x, y) in generated-image pixels


def generator_layers(model) -> list[str]:
    """The G attention layers of a model (query attribution needs G's)."""
    return [name for name in model.attention_layer_names() if network_of(name) == "G"]


def describe(result: AttributionResult, summary: AttributionSummary, gamma: float) -> str:
    """Markdown numbers for one query: time, correlations, how much came only through attention."""

    def number(value, form):
        return "n/a" if value is None else format(value, form)

    lines = [
        f"**{result.layer}** (γ = {gamma:+.4f}), query cell {result.query_cell}, `{result.method}`: "
        f"Captum took **{summary.seconds:.2f} s**.", "",
        "| measure | value |", "|---|---|",
        f"| correlation of β row and \\|attribution\\|, every key cell | {number(summary.beta_correlation, '+.2f')} |",
        f"| cells in the receptive field (γ = 0 run) | {number(summary.receptive_field_cells, 'd')} |",
        f"| share of \\|attribution\\| beyond it (only via attention) | {number(summary.share_beyond, '.2%')} |",
        "| correlation of β row and \\|attribution\\| beyond it "
        f"| {number(summary.beta_correlation_beyond, '+.2f')} |",
    ]
    if summary.share_beyond is None:
        lines.append("\nTick **include γ = 0** to separate the receptive field from what attention carries.")
    return "\n".join(lines)


class AttributionTab:
    """Builds the tab's components and wires thin callbacks to sagan_viz.attribution."""

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], default: CheckpointEntry | None) -> None:
        self.cache = cache
        self.entries = entries
        self.default = default

    @shown_to_user
    def generate(self, checkpoint: str, seed, class_choice, truncation, weights: str, layer: str | None,
                 state: AttributionState):
        """Load (cached) and generate; the old query goes, since it belonged to another image."""
        if not checkpoint:
            raise ValueError("choose a checkpoint first")
        model = self.cache.get(checkpoint)
        generation = generate_from_controls(model, seed, class_choice, truncation, weights)
        layers = generator_layers(model)
        layer = layer if layer in layers else (layers[0] if layers else None)
        state = dataclasses.replace(state, checkpoint=checkpoint, generation=generation, query=None)
        message = "Click the image to choose a query." if layers else "This checkpoint has **no attention in G**."
        return clickable_image(generation, []), None, message, gr.update(choices=layers, value=layer), state

    def attribute(self, state: AttributionState, layer: str | None, method: str, gamma_zero: bool, progress):
        """(clickable image, figure, details, state) for the stored query."""
        if not layer:
            raise ValueError("this checkpoint has no attention layer in G to attribute to")
        model = self.cache.get(state.checkpoint)
        found = attribute_query(model, state.generation, layer, state.query, method, gamma_zero, progress)
        details = describe(found.result, found.summary, state.generation.layer(layer).gamma)
        return clickable_image(state.generation, [found.view]), found.figure, details, state

    @shown_to_user
    def click(self, state: AttributionState, layer, method: str, gamma_zero: bool, event: gr.SelectData,
              progress=gr.Progress()):
        """The clicked pixel becomes the query; Captum runs on it."""
        if state.generation is None:
            raise ValueError("generate an image first")
        pixel = clicked_pixel(state.generation, event.index)
        return self.attribute(dataclasses.replace(state, query=pixel), layer, method, gamma_zero, progress)

    @shown_to_user
    def rerun(self, state: AttributionState, layer, method: str, gamma_zero: bool, progress=gr.Progress()):
        """Another layer, method or gamma = 0 choice: the same query again (nothing to do without one)."""
        if state.generation is None or state.query is None:
            return (gr.skip(),) * 4
        return self.attribute(state, layer, method, gamma_zero, progress)

    @shown_to_user
    def discriminator_view(self, state: AttributionState, method: str):
        """D's saliency (or integrated gradients) over the shown image."""
        if state.generation is None:
            raise ValueError("generate an image first")
        d_method = "saliency" if method == "gradient_x_activation" else "integrated_gradients"
        model = self.cache.get(state.checkpoint)
        if model.discriminator is None:
            raise ValueError(f"This {model.family} checkpoint has no discriminator (its file holds G only).")
        saliency = discriminator_attribution(model, state.generation, d_method)
        return discriminator_figure(state.generation, saliency, d_method)

    def build(self) -> None:
        """Create the components inside the current gr.Blocks and wire the events."""
        state = gr.State(AttributionState())
        gr.Markdown(EXPLANATION)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                controls = generation_controls("attribution", self.entries, self.default, "Attention layer (G)")
                layer = controls.layer
                method = gr.Radio(METHOD_CHOICES, value="gradient_x_activation", label="Attribution method",
                                  elem_id="attribution-method")
                gamma_zero = gr.Checkbox(value=True, label="include γ = 0 (receptive field alone)",
                                         elem_id="attribution-gamma-zero")
                generate = gr.Button("Generate", variant="primary", elem_id="attribution-generate")
                d_button = gr.Button("Discriminator saliency", elem_id="attribution-d-button")
            with gr.Column(scale=2):
                image = gr.Image(label="Click a pixel: its feature cell is the query", interactive=False,
                                 format="png", elem_id="attribution-image", buttons=[])
        figure = gr.Image(label="β row beside the attribution of the query's pixels", format="png",
                          interactive=False, elem_id="attribution-figure", buttons=["download", "fullscreen"])
        details = gr.Markdown(elem_id="attribution-details")
        d_view = gr.Image(label="Discriminator view: which pixels move D's score", format="png",
                          interactive=False, elem_id="attribution-d-view", buttons=["download"])
        attributed = [image, figure, details, state]
        generated = [image, figure, details, layer, state]
        generate.click(self.generate, [*controls.inputs, layer, state], generated)
        self.ready_on_open = (self.generate, [*controls.inputs, layer, state], generated)
        image.select(self.click, [state, layer, method, gamma_zero], attributed)
        for control in (layer, method, gamma_zero):
            control.input(self.rerun, [state, layer, method, gamma_zero], attributed)
        d_button.click(self.discriminator_view, [state, method], [d_view])

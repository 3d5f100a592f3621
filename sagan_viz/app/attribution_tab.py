"""The Attribution tab: click a query, see beta beside Captum's attribution of its pixels to the layer's input."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from ..attribution import (
    DISCRIMINATOR_METHOD_FOR,
    FIGURE_SCALE,
    AttributionResult,
    AttributionSummary,
    attribute_query,
    discriminator_view,
)
from ..figure_record import FigureRecord, write_record
from ..inspect import Generation
from ..layer_names import network_of
from .catalog import CheckpointEntry, ModelCache
from .clickable_image import clickable_html, clickable_image_component, clicked_image_pixel
from .controls import generate_from_controls, generation_controls
from .errors import shown_to_user
from .session_files import StudioFiles

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
    picture: str | None = None  # the served PNG of generation.image (written once per generation)


class AttributionOutputs(NamedTuple):
    """What the Attribution tab's events update, by name (Gradio takes it as the tuple of its outputs, in this order)."""

    image: object  # the clickable image: HTML of the picture (a served PNG) and the query's marker
    figure: object  # the query's attribution figure (a PNG path), or None
    recipe: object  # its figure record (a JSON path), or None
    details: object  # Markdown: Captum's time and the correlations
    layer: object  # the layer dropdown (choices of the generated checkpoint)
    discriminator: object  # D's view of the image (a PNG path), or None
    discriminator_recipe: object  # its figure record (a JSON path), or None
    state: object  # AttributionState

    @classmethod
    def unchanged(cls) -> AttributionOutputs:
        """Every output left as it is."""
        return cls(*(gr.skip(),) * len(cls._fields))


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

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                 files: StudioFiles | None = None) -> None:
        self.cache = cache
        self.entries = entries
        self.default = default
        self.files = files or StudioFiles()  # each session's PNG files and their figure records

    @shown_to_user
    def generate(self, checkpoint: str, seed, class_choice, truncation, weights: str, layer: str | None,
                 state: AttributionState, request: gr.Request = None) -> AttributionOutputs:
        """Load (cached) and generate; the old query and D view go, since they belonged to another image."""
        if not checkpoint:
            raise ValueError("choose a checkpoint first")
        model = self.cache.get(checkpoint)
        generation = generate_from_controls(model, seed, class_choice, truncation, weights)
        layers = generator_layers(model)
        layer = layer if layer in layers else (layers[0] if layers else None)
        # The picture, once per generation (a click changes only its SVG marker), in its own folder so that
        # clicks' figures never push it out while shown.
        picture = self.files.write_png(request, "attribution-picture", generation.image, "image")
        state = dataclasses.replace(state, checkpoint=checkpoint, generation=generation, query=None, picture=picture)
        message = "Click the image to choose a query." if layers else "This checkpoint has **no attention in G**."
        return AttributionOutputs(image=clickable_html(picture, generation.image, []), figure=None, recipe=None,
                                  details=message, layer=gr.update(choices=layers, value=layer), discriminator=None,
                                  discriminator_recipe=None, state=state)

    def record(self, state: AttributionState, **settings) -> FigureRecord:
        """The recipe of a figure of the shown image: what `python -m sagan_viz.figure --from` draws it again from."""
        return FigureRecord.of_generation(Path(state.checkpoint).name, self.cache.digest(state.checkpoint),
                                          self.cache.get(state.checkpoint).family, state.generation,
                                          scale=FIGURE_SCALE, **settings)

    def attribute(self, state: AttributionState, layer: str | None, method: str, gamma_zero: bool, progress,
                  request: gr.Request | None) -> AttributionOutputs:
        """The stored query's attribution: marked image, figure with its recipe, numbers."""
        if not layer:
            raise ValueError("this checkpoint has no attention layer in G to attribute to")
        record = self.record(state, kind="attribution", layer=layer, queries=(state.query,), method=method,
                             gamma_zero=gamma_zero)
        found = attribute_query(self.cache.get(state.checkpoint), state.generation, layer, state.query, method,
                                gamma_zero, progress, record.scale)
        figure = self.files.write_png(request, "attribution", found.figure, "attribution")
        return AttributionOutputs.unchanged()._replace(
            image=clickable_html(state.picture, state.generation.image, [found.view]), figure=figure,
            recipe=write_record(record, figure),
            details=describe(found.result, found.summary, state.generation.layer(layer).gamma), state=state)

    @shown_to_user
    def click(self, state: AttributionState, layer, method: str, gamma_zero: bool, event: gr.SelectData,
              progress=gr.Progress(), request: gr.Request = None) -> AttributionOutputs:
        """The clicked pixel becomes the query; Captum runs on it."""
        if state.generation is None:
            raise ValueError("generate an image first")
        pixel = clicked_image_pixel(state.generation, event.index)
        return self.attribute(dataclasses.replace(state, query=pixel), layer, method, gamma_zero, progress, request)

    @shown_to_user
    def rerun(self, state: AttributionState, layer, method: str, gamma_zero: bool, progress=gr.Progress(),
              request: gr.Request = None) -> AttributionOutputs:
        """Another layer, method or gamma = 0 choice: the same query again (nothing to do without one)."""
        if state.generation is None or state.query is None:
            return AttributionOutputs.unchanged()
        return self.attribute(state, layer, method, gamma_zero, progress, request)

    @shown_to_user
    def show_discriminator(self, state: AttributionState, method: str,
                           request: gr.Request = None) -> AttributionOutputs:
        """D's saliency (or integrated gradients) over the shown image, with its recipe."""
        if state.generation is None:
            raise ValueError("generate an image first")
        record = self.record(state, kind="discriminator-view", layer="", queries=(),
                             method=DISCRIMINATOR_METHOD_FOR[method])
        view = discriminator_view(self.cache.get(state.checkpoint), state.generation, record.method, record.scale)
        figure = self.files.write_png(request, "attribution", view, "discriminator")
        return AttributionOutputs.unchanged()._replace(discriminator=figure,
                                                       discriminator_recipe=write_record(record, figure))

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
                image = clickable_image_component("attribution-image", "Click a pixel: its feature cell is the query",
                                                  "Generate an image, then click it to choose the query.")
        figure = gr.Image(label="β row beside the attribution of the query's pixels", format="png",
                          interactive=False, elem_id="attribution-figure", buttons=["download", "fullscreen"],
                          show_label=False)  # the label's box covered the start of the figure's own title
        recipe = gr.DownloadButton("Figure recipe (JSON)", size="sm", elem_id="attribution-recipe")
        details = gr.Markdown(elem_id="attribution-details")
        d_view = gr.Image(label="Discriminator view: which pixels move D's score", format="png",
                          interactive=False, elem_id="attribution-d-view", buttons=["download"])
        d_recipe = gr.DownloadButton("Discriminator view recipe (JSON)", size="sm", elem_id="attribution-d-recipe")
        # Every event has every output (AttributionOutputs' order); each shows progress only where it draws.
        outputs = list(AttributionOutputs(image, figure, recipe, details, layer, d_view, d_recipe, state))
        generate.click(self.generate, [*controls.inputs, layer, state], outputs)
        self.ready_on_open = (self.generate, [*controls.inputs, layer, state], outputs)
        attributed = [image, figure, details]
        image.select(self.click, [state, layer, method, gamma_zero], outputs, show_progress_on=attributed)
        for control in (layer, method, gamma_zero):
            control.input(self.rerun, [state, layer, method, gamma_zero], outputs, show_progress_on=attributed)
        d_button.click(self.show_discriminator, [state, method], outputs, show_progress_on=[d_view])

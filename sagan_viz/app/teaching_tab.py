"""The Teaching tab: one query through one attention layer, step by step, and what gamma does."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import gradio as gr

from ..imaging import upscale_nearest
from ..inspect import Generation
from ..queries import query_view
from ..teaching import (
    NEAR_ZERO_GAMMA,
    QUERY_MARK,
    gamma_effect,
    gamma_slider_range,
    score_and_beta_images,
    teaching_walkthrough,
)
from ..teaching_text import gamma_effect_markdown, gamma_text, walkthrough_markdown
from .catalog import CheckpointEntry, ModelCache
from .clickable_image import clickable_html, clickable_image_component, clicked_image_pixel
from .controls import generate_from_controls, generation_controls
from .errors import shown_to_user
from .inspect_tab import status_line
from .session_files import StudioFiles
from .views import display_scale

LATEX_DELIMITERS = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
GRID_PIXELS = 256  # the score and beta maps are drawn about this wide
GAMMA_STEP = 1e-4  # the slider's resolution; its ends (0 among them) are multiples of it
NO_QUERY = "**Click the image** to choose the query cell *j*: the six steps of eqs. (1)–(3) appear here."


@dataclass
class TeachingState:
    """What one user sees in the Teaching tab."""

    checkpoint: str | None = None
    generation: Generation | None = None  # made with the learned gamma of every layer
    pixel: tuple[float, float] | None = None  # the query, in generated-image pixels (x, y)
    picture: str | None = None  # the served PNG of generation.image (written once per generation)


class TeachingOutputs(NamedTuple):
    """What the Teaching tab's events update, by name (Gradio takes it as the tuple of its outputs, in this order)."""

    image: object  # the clickable image: HTML of the picture (a served PNG) and the query's marker
    scores: object  # the score map s_j,. (an image update with its range in the label), or None
    beta: object  # the beta map β_j,. (likewise), or None
    steps: object  # Markdown: the walkthrough of eqs. (1)-(3)
    state: object  # TeachingState
    layer: object  # the layer dropdown
    gamma: object  # the gamma slider of the selected layer
    status: object  # Markdown: which weights, where
    result: object  # the image with the chosen gamma, or None
    difference: object  # where it changed, or None
    effect: object  # Markdown: what changed

    @classmethod
    def unchanged(cls) -> TeachingOutputs:
        """Every output left as it is."""
        return cls(*(gr.skip(),) * len(cls._fields))


NO_GAMMA_EFFECT = {"result": None, "difference": None, "effect": ""}  # cleared when the image or layer changes


def steps_markdown(steps: list[tuple[str, str]]) -> str:
    """The walkthrough's (title, body) steps as one Markdown page."""
    return "\n\n".join(f"### {title}\n\n{body}" for title, body in steps)


def gamma_slider(layer: str | None, learned: float | None) -> dict:
    """The slider for the selected layer: 0 to twice its learned gamma, the learned value selected."""
    if layer is None or learned is None:
        return gr.update(interactive=False, label="γ (generate an image first)")
    minimum, maximum = gamma_slider_range(learned)
    label = f"γ of {layer}: learned γ = {gamma_text(learned)}; 0 switches its attention off"
    if abs(learned) < NEAR_ZERO_GAMMA:
        label += " (learned γ is about 0, so the range is ±0.5 instead of 0 … 2γ)"
    return gr.update(minimum=round(minimum, 4), maximum=round(maximum, 4), value=round(learned, 4),
                     step=GAMMA_STEP, label=label, interactive=True)


class TeachingTab:
    """Builds the tab's components and wires thin callbacks to sagan_viz.teaching."""

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                 files: StudioFiles | None = None) -> None:
        self.cache = cache
        self.entries = entries
        self.default = default
        self.files = files or StudioFiles()  # each session's pictures

    def render(self, state: TeachingState, layer: str) -> TeachingOutputs:
        """Image with the query marked, score and beta maps, and the steps; the other outputs left as they are."""
        generation = state.generation
        if state.pixel is None:
            return TeachingOutputs.unchanged()._replace(image=clickable_html(state.picture, generation.image, []),
                                                        scores=None, beta=None, steps=NO_QUERY, state=state)
        view = query_view(generation, layer, state.pixel, QUERY_MARK)
        walkthrough = teaching_walkthrough(self.cache.get(state.checkpoint), generation, layer, view.cell)
        cell_pixels = max(4, GRID_PIXELS // walkthrough.key_shape[1])
        scores, beta = score_and_beta_images(walkthrough, cell_pixels)
        grid = f"{walkthrough.key_shape[0]}×{walkthrough.key_shape[1]} key grid; blue frame: the query's cell"
        scores_label = (f"Scores s_ij on the {grid}: {float(walkthrough.scores.min()):+.2f} (dark) … "
                        f"{float(walkthrough.scores.max()):+.2f} (bright)")
        beta_label = f"β_j,i on the {grid}: 0 (dark) … {float(walkthrough.beta.max()):.4f} (bright); sums to 1"
        return TeachingOutputs.unchanged()._replace(
            image=clickable_html(state.picture, generation.image, [view]),
            scores=gr.update(value=scores, label=scores_label),
            beta=gr.update(value=beta, label=beta_label), steps=steps_markdown(walkthrough_markdown(walkthrough)),
            state=state,
        )

    @shown_to_user
    def generate(self, checkpoint: str, seed, class_choice, truncation, weights: str, layer: str | None,
                 state: TeachingState, request: gr.Request = None) -> TeachingOutputs:
        """Generate with the learned gammas; the query point stays, so seeds compare at the same spot."""
        if not checkpoint:
            raise ValueError("choose a checkpoint first")
        model = self.cache.get(checkpoint)
        layers = model.attention_layer_names()
        if not layers:
            raise ValueError(f"{model.name} has no attention layers: teaching mode needs a checkpoint with some")
        generation = generate_from_controls(model, seed, class_choice, truncation, weights)
        layer = layer if layer in layers else layers[0]
        # The picture, once per generation (a click changes only its SVG marker), in its own folder.
        picture = self.files.write_png(request, "teaching-picture", generation.image, "image")
        state = dataclasses.replace(state, checkpoint=checkpoint, generation=generation, picture=picture)
        return self.render(state, layer)._replace(
            layer=gr.update(choices=layers, value=layer), gamma=gamma_slider(layer, generation.layer(layer).gamma),
            status=status_line(model, generation), **NO_GAMMA_EFFECT,
        )

    @shown_to_user
    def click(self, state: TeachingState, layer: str | None, event: gr.SelectData) -> TeachingOutputs:
        """The clicked pixel becomes the query j; the steps are recomputed for it."""
        if state.generation is None:
            raise ValueError("generate an image first")
        pixel = clicked_image_pixel(state.generation, event.index)
        return self.render(dataclasses.replace(state, pixel=pixel), layer)

    @shown_to_user
    def change_layer(self, state: TeachingState, layer: str | None) -> TeachingOutputs:
        """Same image and query, another layer: new steps and a slider for that layer's gamma."""
        if state.generation is None:
            return TeachingOutputs.unchanged()
        slider = gamma_slider(layer, state.generation.layer(layer).gamma)
        return self.render(state, layer)._replace(gamma=slider, **NO_GAMMA_EFFECT)

    @shown_to_user
    def apply_gamma(self, state: TeachingState, layer: str | None, gamma) -> TeachingOutputs:
        """Regenerate the same seed with the layer's gamma overridden; show the image and what changed."""
        if state.generation is None:
            raise ValueError("generate an image first")
        if gamma is None:
            raise ValueError("choose a value of γ with the slider")
        original = state.generation
        model = self.cache.get(state.checkpoint)
        overridden = model.generate(z=original.z, label=original.label, truncation=original.truncation,
                                    weights=original.weights, gamma={layer: float(gamma)})
        effect = gamma_effect(original, overridden)
        scale = display_scale(original.image.shape[1])
        learned = {layer: original.layer(layer).gamma}
        return TeachingOutputs.unchanged()._replace(
            result=upscale_nearest(effect.image, scale), difference=upscale_nearest(effect.difference_image, scale),
            effect=gamma_effect_markdown(effect, learned),
        )

    def build(self) -> None:
        """Create the components inside the current gr.Blocks and wire the events."""
        state = gr.State(TeachingState())
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                controls = generation_controls("teaching", self.entries, self.default)
                layer = controls.layer
                generate = gr.Button("Generate", variant="primary", elem_id="teaching-generate")
                status = gr.Markdown(elem_id="teaching-status")
            with gr.Column(scale=2, min_width=360):
                image = clickable_image_component("teaching-image", "Click a pixel: it becomes the query j",
                                                  "Generate an image, then click it to choose the query j.")
            with gr.Column(scale=1, min_width=260):
                scores = gr.Image(label="Scores s_ij on the key grid", interactive=False, format="png",
                                  elem_id="teaching-scores", buttons=[])
                beta = gr.Image(label="β_j,i on the key grid", interactive=False, format="png",
                                elem_id="teaching-beta", buttons=[])
        steps = gr.Markdown(NO_QUERY, latex_delimiters=LATEX_DELIMITERS, elem_id="teaching-steps")
        gr.Markdown("### What does γ do?\nSet the selected layer's γ for one image (the checkpoint is not "
                    "changed) and compare it with the learned γ.")
        with gr.Row():
            gamma = gr.Slider(-0.5, 0.5, value=0.0, label="γ (generate an image first)", interactive=False,
                              elem_id="teaching-gamma", scale=3)
            apply = gr.Button("Apply γ", elem_id="teaching-apply", scale=1)
        with gr.Row():
            result = gr.Image(label="The same seed with this γ", interactive=False, format="png",
                              elem_id="teaching-result", buttons=[])
            difference = gr.Image(label="Where it changed: |Δ| per pixel, brightest = its maximum (see below)",
                                  interactive=False, format="png", elem_id="teaching-difference", buttons=[])
        effect = gr.Markdown(elem_id="teaching-effect")
        # Every event has every output (TeachingOutputs' order); each shows progress only where it draws.
        outputs = list(TeachingOutputs(image, scores, beta, steps, state, layer, gamma, status, result, difference,
                                       effect))
        rendered, gamma_outputs = [image, scores, beta, steps], [result, difference, effect]
        generate.click(self.generate, [*controls.inputs, layer, state], outputs)
        self.ready_on_open = (self.generate, [*controls.inputs, layer, state], outputs)
        image.select(self.click, [state, layer], outputs, show_progress_on=rendered)
        layer.input(self.change_layer, [state, layer], outputs, show_progress_on=[*rendered, gamma, *gamma_outputs])
        apply.click(self.apply_gamma, [state, layer, gamma], outputs, show_progress_on=gamma_outputs)

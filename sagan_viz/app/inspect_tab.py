"""The Inspect tab: generate, click pixels, see where each query attends."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from ..figure_record import FigureRecord, write_record
from ..paper_figure import PanelCache
from .catalog import CheckpointEntry, ModelCache, entry_for
from .clickable_image import clickable_html, clickable_image_component, clicked_image_pixel
from .controls import checkpoint_choices, generate_from_controls, generation_controls, model_option_updates
from .errors import shown_to_user
from .session_files import StudioFiles
from .state import InspectState, add_query, newest_slot, remove_newest_query
from .views import figure_scale, inspect_view


def status_line(model, generation) -> str:
    """Which weights, where, in which mode: so comparisons are known to be fair."""
    weights = {"ema": "EMA-G", "raw": "raw G", "train-bn": "raw G, batch norm in train mode"}.get(generation.weights,
                                                                                                generation.weights)
    score = "no discriminator" if generation.discriminator_score is None else f"D(x) = {generation.discriminator_score:+.2f}"
    mode = "train-mode batch norm" if generation.weights == "train-bn" else "eval mode"
    return (
        f"**{model.name}** ({model.family}) · {generation.origin} · {weights} · {mode} · running on "
        f"**{model.device_label}** · {score}\n\n<details><summary>What was imported</summary>\n\n{model.report()}"
        "\n\n</details>"
    )


class InspectOutputs(NamedTuple):
    """What every Inspect event updates, by name (Gradio takes it as the tuple of its outputs, in this order)."""

    image: object  # the clickable image: HTML of the picture (a served PNG) and SVG markers
    figure: object  # the paper figure (a PNG path)
    details: object  # HTML: the true scale of every map
    grid: object  # the raw grid of the newest map (a PNG path), or None (also while it is hidden)
    download: object  # the figure's file, offered by the download button
    recipe: object  # the figure's record (a JSON path), or None
    state: object  # InspectState

    @classmethod
    def unchanged(cls) -> InspectOutputs:
        """Every output left as it is."""
        return cls(*(gr.skip(),) * len(cls._fields))


MODE_CHOICES = [("where a query looks (row of β)", "row"), ("who looks at a position (column of β)", "column"),
                ("where attention acts (‖γ·o‖ / ‖x‖)", "effect")]


class InspectTab:
    """Builds the tab's components and wires thin callbacks to the library."""

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                 files: StudioFiles | None = None) -> None:
        self.cache = cache
        self.entries = entries
        self.default = default
        self.columns = PanelCache()  # figure columns already drawn, shared by this tab's sessions
        self.files = files or StudioFiles()  # each session's PNG files and uploads
        # Drawing holds the GIL, so two sessions' figures drawn at once only interleave, and both finish late;
        # one at a time, the first is done sooner and the second no later (README "Many users": 8 users'
        # p95 about 15% lower).
        self.drawing = threading.Lock()

    def render(self, state: InspectState, layer: str | None, request: gr.Request | None = None):
        """All outputs that depend on (generation, layer, queries, mode), images as PNG files of the session.

        The picture is written once per generation (a click only changes its SVG markers); the raw grid
        is drawn only while it is shown.
        """
        with self.drawing:
            return self.render_now(state, layer, request)

    def render_now(self, state: InspectState, layer: str | None, request: gr.Request | None) -> InspectOutputs:
        """render, with the drawing lock held."""
        view = inspect_view(state.generation, layer or None, state.queries, self.columns, state.mode, state.show_grid,
                            newest_slot(state))
        if state.picture is None:  # its own folder, so that clicks' figures never push it out while shown
            state = dataclasses.replace(
                state, picture=self.files.write_png(request, "inspect-picture", state.generation.image, "image"))
        figure = self.files.write_png(request, "inspect", view.figure, "figure")  # shown, and downloaded
        # The hidden grid is cleared rather than skipped: Gradio answers gr.skip() by rebuilding the component's
        # config (4 ms a click, measured), and the grid is drawn again when it is shown.
        grid = None
        if state.show_grid and view.grid is not None:
            grid = self.files.write_png(request, "inspect", view.grid, "grid")
        recipe = self.recipe(state, layer, figure)
        image = clickable_html(state.picture, state.generation.image, view.markers)
        return InspectOutputs(image, figure, view.details, grid, figure, recipe, state)

    def recipe(self, state: InspectState, layer: str | None, figure_path: str) -> str | None:
        """The figure's record beside its PNG (row mode: what python -m sagan_viz.figure --from redraws)."""
        if state.mode != "row" or not layer or not state.queries or state.checkpoint is None:
            return None
        record = FigureRecord.of_generation(
            Path(state.checkpoint).name, self.cache.digest(state.checkpoint), self.cache.get(state.checkpoint).family,
            state.generation, layer=layer, queries=tuple(state.queries),
            scale=figure_scale(state.generation.image.shape[1]), peaks=3)
        return write_record(record, figure_path)

    @shown_to_user
    def generate(self, checkpoint: str, seed, class_choice, truncation, weights: str, layer: str | None,
                 state: InspectState, request: gr.Request = None):
        """Load (cached) and generate; queries stay, so seeds can be compared at the same points."""
        if not checkpoint:
            raise ValueError("choose a checkpoint first")
        model = self.cache.get(checkpoint)
        generation = generate_from_controls(model, seed, class_choice, truncation, weights)
        layers = model.attention_layer_names()
        layer = layer if layer in layers else (layers[0] if layers else None)
        state = dataclasses.replace(state, checkpoint=checkpoint, generation=generation, picture=None)
        outputs = self.render(state, layer, request)
        return (*outputs, gr.update(choices=layers, value=layer), status_line(model, generation))

    @shown_to_user
    def click(self, state: InspectState, layer: str | None, event: gr.SelectData, request: gr.Request = None):
        """Add the clicked pixel as a query and answer from the stored beta (no network runs)."""
        if state.generation is None:
            raise ValueError("generate an image first")
        pixel = clicked_image_pixel(state.generation, event.index)
        return self.render(add_query(state, pixel), layer, request)

    @shown_to_user
    def change_layer(self, state: InspectState, layer: str | None, request: gr.Request = None):
        """Same queries, another layer."""
        if state.generation is None:
            return InspectOutputs.unchanged()
        return self.render(state, layer, request)

    @shown_to_user
    def change_mode(self, state: InspectState, layer: str | None, mode: str, request: gr.Request = None):
        """Row, column or effect view of the same image and clicks."""
        state = dataclasses.replace(state, mode=mode)
        if state.generation is None:
            return InspectOutputs.unchanged()._replace(state=state)
        return self.render(state, layer, request)

    @shown_to_user
    def show_grid(self, state: InspectState, layer: str | None, shown: bool, request: gr.Request = None):
        """Show or hide the raw beta grid of the newest query; the other outputs stay as they are."""
        state = dataclasses.replace(state, show_grid=bool(shown))
        grid = None
        if state.show_grid and state.generation is not None:
            view = inspect_view(state.generation, layer or None, state.queries, self.columns, state.mode, True,
                                newest_slot(state))
            grid = None if view.grid is None else self.files.write_png(request, "inspect", view.grid, "grid")
        return InspectOutputs.unchanged()._replace(grid=gr.update(value=grid, visible=state.show_grid), state=state)

    @shown_to_user
    def remove_last(self, state: InspectState, layer: str | None, request: gr.Request = None):
        """Drop the newest query."""
        if state.generation is None:
            return InspectOutputs.unchanged()
        return self.render(remove_newest_query(state), layer, request)

    @shown_to_user
    def clear(self, state: InspectState, layer: str | None, request: gr.Request = None):
        """Drop every query."""
        if state.generation is None:
            return InspectOutputs.unchanged()
        return self.render(dataclasses.replace(state, queries=[], recency=()), layer, request)

    @shown_to_user
    def upload(self, path: str | None, request: gr.Request = None):
        """Check an uploaded file (kept in the session's own folder); a good checkpoint joins the list and is
        selected. A bad one is deleted and named in the message by its own file name (errors.py)."""
        if not path:
            return (gr.skip(),) * 6
        kept = self.files.keep_upload(request, path)
        try:
            entry = dataclasses.replace(entry_for(kept), run=Path(kept).name)  # labelled by the user's file name
            self.cache.get(kept)
        except Exception:
            self.files.discard_upload(kept)
            raise  # CheckpointError -> a message; the app stays as it was
        choices = checkpoint_choices(self.entries) + [(f"uploaded: {entry.label}", str(entry.path))]
        return (gr.update(choices=choices, value=str(entry.path)), *model_option_updates(entry),
                f"Loaded **{entry.label}** from the upload.\n\n{self.cache.get(kept).report()}")

    def build(self) -> None:
        """Create the components inside the current gr.Blocks and wire the events."""
        state = gr.State(InspectState())
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                controls = generation_controls("inspect", self.entries, self.default, with_upload=True)
                checkpoint, weights, layer = controls.checkpoint, controls.weights, controls.layer
                generate = gr.Button("Generate", variant="primary", elem_id="inspect-generate")
                status = gr.Markdown(elem_id="inspect-status")
            with gr.Column(scale=2):
                image = clickable_image_component(
                    "inspect-image", "Click a pixel to add a query (up to 5; the next takes the oldest one's place)")
                with gr.Row():
                    remove = gr.Button("Remove newest query", size="sm")
                    clear = gr.Button("Clear queries", size="sm", elem_id="inspect-clear")
                    download = gr.DownloadButton("Download figure (PNG)", size="sm", elem_id="inspect-download")
                    recipe = gr.DownloadButton("Figure recipe (JSON)", size="sm", elem_id="inspect-recipe")
                mode = gr.Radio(MODE_CHOICES, value="row", label="Show", elem_id="inspect-mode")
        figure = gr.Image(label="Where each query attends (β row, arrows to its peaks)", format="png",
                          interactive=False, elem_id="inspect-figure", buttons=["fullscreen"],
                          show_label=False)
        details = gr.HTML(elem_id="inspect-details", padding=False)
        show_grid = gr.Checkbox(False, label="Also show the raw β grid of the newest query (one cell per key)",
                                elem_id="inspect-show-grid")
        grid = gr.Image(label="Raw β grid of the newest query, on the key grid", format="png", interactive=False,
                        elem_id="inspect-grid", buttons=[], visible=False)
        rendered = [image, figure, details, grid, download, recipe, state]  # InspectOutputs' order
        generate.click(self.generate, [*controls.inputs, layer, state], [*rendered, layer, status])
        # Answered from the kept generation in ~10-20 ms, so not queued: a queued event costs the page a round of
        # status updates over every component with each queue message (measured: 1.4x instead of 1.1x the time
        # of a trivial app's click, benchmarks/README.md).
        image.select(self.click, [state, layer], rendered, show_progress="hidden", queue=False)
        layer.input(self.change_layer, [state, layer], rendered, queue=False)
        remove.click(self.remove_last, [state, layer], rendered, queue=False)
        clear.click(self.clear, [state, layer], rendered, queue=False)
        mode.input(self.change_mode, [state, layer, mode], rendered, queue=False)
        show_grid.input(self.show_grid, [state, layer, show_grid], rendered, queue=False)
        self.ready_on_open = (self.generate, [*controls.inputs, layer, state], [*rendered, layer, status])
        # One upload checked and loaded at a time: loading takes memory of the file's size (up to the upload limit).
        controls.upload.upload(self.upload, [controls.upload], [checkpoint, controls.class_choice, controls.truncation,
                                                                weights, controls.class_search, status],
                               concurrency_limit=1)

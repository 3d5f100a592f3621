"""The Compare tab: checkpoints (of any family), seeds and classes side by side at the same query points;
one click updates every panel."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from ..checkpoint import CheckpointError
from ..comparison import PANEL_SCALE, comparison_panel
from ..families import LoadedModel
from ..figure_record import FigureRecord, write_record
from ..grid import rescale_pixels
from ..inspect import Generation
from ..paper_figure import PanelCache
from .catalog import CheckpointEntry, ModelCache, all_layer_names
from .clickable_image import clickable_html, clickable_image_component, clicked_image_pixel, query_markers
from .controls import WEIGHT_CHOICES, checkpoint_choices
from .errors import shown_to_user
from .session_files import StudioFiles
from .state import CompareState, add_query

MAX_PANELS = 4


class CompareOutputs(NamedTuple):
    """What every Compare event updates, by name (Gradio takes it as the tuple of its outputs, in this order)."""

    reference: object  # the first checkpoint's image to click on: HTML of the picture (a served PNG) and markers
    panel_1: object  # each slot's figure: gr.update(value=PNG path, label=title, visible=...)
    panel_2: object
    panel_3: object
    panel_4: object
    recipe_1: object  # each slot's recipe button: gr.update(value=the panel's figure record, a JSON path, visible=...)
    recipe_2: object
    recipe_3: object
    recipe_4: object
    state: object  # CompareState

    @property
    def panels(self) -> tuple:
        """The MAX_PANELS figure slots, first to last."""
        return tuple(getattr(self, f"panel_{number}") for number in range(1, MAX_PANELS + 1))

    @property
    def recipes(self) -> tuple:
        """The MAX_PANELS recipe buttons, in the panels' order."""
        return tuple(getattr(self, f"recipe_{number}") for number in range(1, MAX_PANELS + 1))

    @classmethod
    def unchanged(cls) -> CompareOutputs:
        """Every output left as it is."""
        return cls(*(gr.skip(),) * len(cls._fields))


def default_comparison(entries: list[CheckpointEntry], default: CheckpointEntry | None) -> list[str]:
    """Late vs early of the default run, plus the newest run without attention if there is one.

    The late snapshot comes first: its image is the one a user clicks on.
    """
    if default is None:
        return []
    same_run = [e for e in entries if e.run == default.run]
    chosen = [default, min(same_run, key=lambda e: e.step)]
    baselines = [e for e in entries if not e.has_attention and e.resolution == default.resolution]
    if baselines:
        chosen.append(max(baselines, key=lambda e: e.step))
    return list(dict.fromkeys(str(e.path) for e in chosen))


def parse_seeds(text) -> list[int]:
    """'7, 8 9' -> [7, 8, 9]; ValueError naming a token that is not a whole number."""
    tokens = str(text if text is not None else "").replace(",", " ").split()
    seeds = []
    for token in tokens:
        try:
            seeds.append(int(token))
        except ValueError:
            raise ValueError(f"seeds: {token!r} is not a whole number (write e.g. 7, 8, 9)") from None
    return seeds or [0]


def parse_classes(model: LoadedModel, text) -> list[int | None]:
    """'207, tabby' -> [207, 281]; [None] (the seed's class) when blank or the model is unconditional."""
    tokens = [token for token in str(text or "").split(",") if token.strip()]
    if not tokens or not model.conditional:
        return [None]
    return [model.class_for_text(token) for token in tokens]


class CompareTab:
    """Builds the tab and wires thin callbacks."""

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                 files: StudioFiles | None = None) -> None:
        self.cache = cache
        self.entries = entries
        self.default = default
        self.labels = {str(e.path): e.label for e in entries}
        self.columns = PanelCache(capacity=4 * 5 * 4)  # every panel's columns, several clicks back
        self.files = files or StudioFiles()  # each session's PNG files

    def panels(self, state: CompareState, layer: str, request: gr.Request | None = None) -> CompareOutputs:
        """The reference image (first checkpoint, its markers) and one panel with its recipe per checkpoint;
        the rest hidden."""
        reference = state.generations[0]
        panels, recipes = [], []
        for path, generation in zip(state.checkpoints, state.generations):
            pixels = rescale_pixels(state.queries, reference.image_size, generation.image_size)
            record = self.record(path, generation, layer, pixels)
            panel = comparison_panel(generation, layer, list(record.queries), record.title, self.columns,
                                     record.scale, record.peaks)
            png = self.files.write_png(request, "compare", panel, "compare")
            panels.append(gr.update(value=png, label=record.title, visible=True))
            recipes.append(gr.update(value=write_record(record, png), visible=True))
        hidden = [gr.update(value=None, visible=False)] * (MAX_PANELS - len(panels))
        image = clickable_html(state.picture, reference.image, query_markers(state.queries))
        return CompareOutputs(image, *panels, *hidden, *recipes, *hidden, state)

    def record(self, path: str, generation: Generation, layer: str, pixels) -> FigureRecord:
        """The recipe of one panel: what `python -m sagan_viz.figure --from` draws it again from."""
        return FigureRecord.of_generation(
            Path(path).name, self.cache.digest(path), self.cache.get(path).family, generation, kind="compare-panel",
            layer=layer, queries=tuple(pixels), title=self.labels.get(path, path), scale=PANEL_SCALE,
        )

    @shown_to_user
    def generate(self, checkpoints: list[str], seeds, classes, truncation, weights: str, layer: str,
                 state: CompareState, request: gr.Request = None):
        """Every chosen checkpoint × seed × class, one panel each (queries are kept)."""
        if not checkpoints:
            raise ValueError("choose at least one checkpoint to compare")
        requests = []
        for path in checkpoints:
            try:
                model = self.cache.get(path)
            except CheckpointError as error:
                raise ValueError(f"cannot compare: {error}") from None
            requests += [(path, model, seed, label) for seed in parse_seeds(seeds) for label in parse_classes(model, classes)]
        if len(requests) > MAX_PANELS:
            raise ValueError(f"that makes {len(requests)} panels (checkpoints × seeds × classes); at most {MAX_PANELS} fit")
        generations = []
        for _path, model, seed, label in requests:
            generations.append(model.generate(
                seed=seed, label=label, weights=weights if weights in model.weight_choices else model.weight_choices[0],
                truncation=None if model.truncation is None else float(truncation)))
        # The reference's picture, once per Compare (a click changes only its SVG markers), in its own folder so
        # that clicks' panels never push it out while shown.
        picture = self.files.write_png(request, "compare-picture", generations[0].image, "image")
        state = dataclasses.replace(state, checkpoints=[path for path, *_ in requests], generations=generations,
                                    picture=picture)
        return self.panels(state, layer, request)

    @shown_to_user
    def click(self, state: CompareState, layer: str, event: gr.SelectData, request: gr.Request = None):
        """A click on the reference image adds the same query to every panel."""
        if not state.generations:
            raise ValueError("press Compare first")
        pixel = clicked_image_pixel(state.generations[0], event.index)
        return self.panels(add_query(state, pixel), layer, request)

    @shown_to_user
    def rerender(self, state: CompareState, layer: str, request: gr.Request = None):
        """Another layer or cleared queries: redraw from the stored generations."""
        if not state.generations:
            return CompareOutputs.unchanged()
        return self.panels(state, layer, request)

    @shown_to_user
    def clear(self, state: CompareState, layer: str, request: gr.Request = None):
        """Drop every query in every panel."""
        return self.rerender(dataclasses.replace(state, queries=[], recency=()), layer, request)

    def build(self) -> None:
        """Create the components inside the current gr.Blocks and wire the events."""
        state = gr.State(CompareState())
        layer_names = all_layer_names(self.entries) or ["G.attn0"]
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                checkpoints = gr.Dropdown(
                    checkpoint_choices(self.entries), value=default_comparison(self.entries, self.default),
                    multiselect=True, max_choices=MAX_PANELS, label="Checkpoints to compare",
                    elem_id="compare-checkpoints",
                )
                seed = gr.Textbox(value="7", label="Seeds (one panel each, e.g. 7, 8, 9)", elem_id="compare-seeds")
                classes = gr.Textbox(value="", label="Classes of conditional models (indices or names, e.g. "
                                     "207, tabby; blank: the seed's class)", elem_id="compare-classes")
                truncation = gr.Slider(0.02, 1.0, step=0.02, value=0.4, label="Truncation (BigGAN-deep)",
                                       elem_id="compare-truncation")
                weights = gr.Radio(WEIGHT_CHOICES, value="ema", label="Generator weights")
                layer = gr.Dropdown(layer_names, value=layer_names[0], label="Attention layer", elem_id="compare-layer")
                run = gr.Button("Compare", variant="primary", elem_id="compare-run")
                clear = gr.Button("Clear queries", size="sm")
            with gr.Column(scale=1):
                reference = clickable_image_component(
                    "compare-reference", "Click here: the query goes to every panel (first checkpoint's image)",
                    "Press Compare, then click the first checkpoint's image to add queries.")
        slots, recipes = [], []
        for first in range(0, MAX_PANELS, 2):  # side by side, two to a row
            with gr.Row():
                for index in (first, first + 1):
                    with gr.Column():
                        slots.append(gr.Image(visible=False, interactive=False, format="png",
                                              elem_id=f"compare-panel-{index}", buttons=["download"], show_label=False))
                        recipes.append(gr.DownloadButton("Panel recipe (JSON)", visible=False, size="sm",
                                                         elem_id=f"compare-recipe-{index}"))
        outputs = list(CompareOutputs(reference, *slots, *recipes, state))
        run.click(self.generate, [checkpoints, seed, classes, truncation, weights, layer, state], outputs)
        self.ready_on_open = (self.generate, [checkpoints, seed, classes, truncation, weights, layer, state], outputs)
        reference.select(self.click, [state, layer], outputs, show_progress="hidden")
        layer.input(self.rerender, [state, layer], outputs)
        clear.click(self.clear, [state, layer], outputs)

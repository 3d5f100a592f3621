"""The Compare tab: several checkpoints, same seed, same query points; one click updates every panel."""
from __future__ import annotations

import dataclasses

import gradio as gr
from PIL import Image

from ..checkpoint import CheckpointError
from ..queries import figure_caption
from ..paper_figure import PanelCache, paper_figure
from .catalog import CheckpointEntry, ModelCache, all_layer_names
from .controls import WEIGHT_CHOICES, checkpoint_choices
from .errors import shown_to_user
from .png_files import served_png_files
from .state import CompareState, add_query
from .views import clickable_image, clicked_pixel, query_views

MAX_PANELS = 4
DOWNLOAD_BUTTON_CLEARANCE = 44  # figure pixels kept free of title text under each panel's download button


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


def comparison_panel(generation, layer: str, pixels, title: str, columns: PanelCache | None = None) -> Image.Image:
    """One checkpoint's figure, titled with the checkpoint; one without that layer says so instead of failing.

    columns: figure columns drawn before (a click then draws one new column per panel).
    """
    if layer in generation.layers:
        caption = f"{title} · {figure_caption(generation, layer)}"
        views = query_views(generation, layer, pixels)
        return paper_figure(generation.image, views, generation.layers[layer].key_shape, scale=6, caption=caption,
                            cache=columns, title_inset=DOWNLOAD_BUTTON_CLEARANCE)
    missing = f"no attention layer {layer} in this checkpoint" if generation.layers else "no attention layers"
    return paper_figure(generation.image, [], None, scale=6, caption=f"{title} · {missing}", cache=columns,
                        title_inset=DOWNLOAD_BUTTON_CLEARANCE)


class CompareTab:
    """Builds the tab and wires thin callbacks."""

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], default: CheckpointEntry | None) -> None:
        self.cache = cache
        self.entries = entries
        self.default = default
        self.labels = {str(e.path): e.label for e in entries}
        self.columns = PanelCache(capacity=4 * 5 * 4)  # every panel's columns, several clicks back
        self.pngs = served_png_files()

    def panels(self, state: CompareState, layer: str):
        """The reference image (first checkpoint) and one panel per checkpoint, padded with hidden slots."""
        reference = state.generations[0]
        views = query_views(reference, layer, state.queries) if layer in reference.layers else []
        updates = []
        for path, generation in zip(state.checkpoints, state.generations):
            title = self.labels.get(path, path)
            panel = comparison_panel(generation, layer, state.queries, title, self.columns)
            updates.append(gr.update(value=self.pngs.write(panel, "compare"), label=title, visible=True))
        updates += [gr.update(value=None, visible=False)] * (MAX_PANELS - len(updates))
        return (self.pngs.write(clickable_image(reference, views), "reference"), *updates, state)

    @shown_to_user
    def generate(self, checkpoints: list[str], seed, weights: str, layer: str, state: CompareState):
        """Generate the same seed with every chosen checkpoint (queries are kept)."""
        if not checkpoints:
            raise ValueError("choose at least one checkpoint to compare")
        if len(checkpoints) > MAX_PANELS:
            raise ValueError(f"compare at most {MAX_PANELS} checkpoints at once")
        generations = []
        for path in checkpoints:
            try:
                generations.append(self.cache.get(path).generate(seed=int(seed or 0), weights=weights))
            except CheckpointError as error:
                raise ValueError(f"cannot compare: {error}") from None
        state = dataclasses.replace(state, checkpoints=list(checkpoints), generations=generations)
        return self.panels(state, layer)

    @shown_to_user
    def click(self, state: CompareState, layer: str, event: gr.SelectData):
        """A click on the reference image adds the same query to every panel."""
        if not state.generations:
            raise ValueError("press Compare first")
        pixel = clicked_pixel(state.generations[0], event.index)
        return self.panels(dataclasses.replace(state, queries=add_query(state.queries, pixel)), layer)

    @shown_to_user
    def rerender(self, state: CompareState, layer: str):
        """Another layer or cleared queries: redraw from the stored generations."""
        if not state.generations:
            return (gr.skip(),) * (MAX_PANELS + 2)
        return self.panels(state, layer)

    @shown_to_user
    def clear(self, state: CompareState, layer: str):
        """Drop every query in every panel."""
        return self.rerender(dataclasses.replace(state, queries=[]), layer)

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
                seed = gr.Number(value=7, precision=0, label="Seed (the same for every panel)")
                weights = gr.Radio(WEIGHT_CHOICES, value="ema", label="Generator weights")
                layer = gr.Dropdown(layer_names, value=layer_names[0], label="Attention layer", elem_id="compare-layer")
                run = gr.Button("Compare", variant="primary", elem_id="compare-run")
                clear = gr.Button("Clear queries", size="sm")
            with gr.Column(scale=1):
                reference = gr.Image(label="Click here: the query goes to every panel (first checkpoint's image)",
                                     interactive=False, format="png", elem_id="compare-reference", buttons=[])
        slots = []
        for first in range(0, MAX_PANELS, 2):  # side by side, two to a row
            with gr.Row():
                slots += [gr.Image(visible=False, interactive=False, format="png", elem_id=f"compare-panel-{i}",
                                   buttons=["download"], show_label=False) for i in (first, first + 1)]
        outputs = [reference, *slots, state]
        run.click(self.generate, [checkpoints, seed, weights, layer, state], outputs)
        reference.select(self.click, [state, layer], outputs, show_progress="hidden")
        layer.input(self.rerender, [state, layer], outputs)
        clear.click(self.clear, [state, layer], outputs)

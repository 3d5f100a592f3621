"""The timeline under the γ curve: one image through every snapshot of a run, clicked queries in every column."""
from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field

import gradio as gr

from ..inspect import Generation
from ..timeline import strip_array, timeline_frames, timeline_generations, timeline_views, write_gif
from .catalog import CheckpointEntry, ModelCache, entry_for
from .clickable_image import clickable_html, clickable_image_component, clicked_image_pixel, query_markers
from .errors import shown_to_user
from .session_files import StudioFiles
from .state import add_query


@dataclass
class TimelineState:
    """One user's timeline: the run's generations on one z, oldest first, and the clicked queries."""

    generations: list[Generation] = field(default_factory=list)
    queries: list[tuple[float, float]] = field(default_factory=list)  # pixels (x, y) of the newest generation, by slot
    recency: tuple[int, ...] = ()  # the queries' slots, oldest first (state.add_query)
    picture: str | None = None  # the served PNG of the newest generation's image (written once per timeline)


def run_snapshots(entry: CheckpointEntry, entries: list[CheckpointEntry]) -> list[CheckpointEntry]:
    """The snapshots beside entry in its folder, up to its step, oldest first (entry alone without steps)."""
    if entry.step is None:
        return [entry]
    same_run = [e for e in entries if e.path.parent == entry.path.parent and e.step is not None and e.step <= entry.step]
    return sorted(same_run or [entry], key=lambda e: e.step)


class TimelinePanel:
    """Builds the timeline's components and wires thin callbacks to sagan_viz.timeline."""

    def __init__(self, cache: ModelCache, entries: list[CheckpointEntry], files: StudioFiles | None = None) -> None:
        self.cache = cache
        self.entries = entries
        self.files = files or StudioFiles()  # the pictures and GIFs go to each session's own folders

    def render(self, state: TimelineState, layer: str | None, request: gr.Request | None = None):
        """(clickable newest image: HTML with a marker per query, strip, GIF path, state); the session keeps only
        its newest GIF."""
        newest = state.generations[-1]
        layer = layer or "G.attn0"
        snapshots = timeline_views(state.generations, layer, state.queries, newest.image_size)
        gif = None
        if state.queries:
            folder = self.files.session_folder(request, "timeline")
            for old in folder.glob("timeline-*.gif"):
                old.unlink(missing_ok=True)
            gif = str(write_gif(timeline_frames(snapshots, layer), folder / f"timeline-{secrets.token_urlsafe(16)}.gif"))
        image = clickable_html(state.picture, newest.image, query_markers(state.queries))
        return image, strip_array(snapshots, layer), gif, state

    @shown_to_user
    def show(self, checkpoint: str | None, seed, layer: str | None, state: TimelineState, request: gr.Request = None):
        """Generate the seed with every snapshot of the checkpoint's run (queries are kept)."""
        if not checkpoint:
            raise ValueError("choose a checkpoint")
        snapshots = run_snapshots(entry_for(checkpoint), self.entries)
        models = [self.cache.get(snapshot.path) for snapshot in snapshots]
        newest = models[-1]
        seed = int(seed or 0)
        z = newest.latent(seed, newest.resolve_truncation(None))
        generations = timeline_generations(models, z, newest.default_label(seed))
        # The newest image's picture, once per timeline (a click changes only its SVG markers), in its own folder.
        picture = self.files.write_png(request, "timeline-picture", generations[-1].image, "image")
        return self.render(dataclasses.replace(state, generations=generations, picture=picture), layer, request)

    @shown_to_user
    def click(self, state: TimelineState, layer: str | None, event: gr.SelectData, request: gr.Request = None):
        """A click on the newest image adds a query to every column."""
        if not state.generations:
            raise ValueError("press Show timeline first")
        pixel = clicked_image_pixel(state.generations[-1], event.index)
        return self.render(add_query(state, pixel), layer, request)

    @shown_to_user
    def clear(self, state: TimelineState, layer: str | None, request: gr.Request = None):
        """Drop every query."""
        if not state.generations:
            return (gr.skip(),) * 4
        return self.render(dataclasses.replace(state, queries=[], recency=()), layer, request)

    def build(self, demo: gr.Blocks, checkpoint: gr.Dropdown, layer_names: list[str]) -> None:
        """Create the components in the current gr.Blocks; the timeline fills on page load."""
        gr.Markdown("### Timeline: one image through every snapshot\nThe same z and class in every snapshot of "
                    "the run. Click the newest image (left) to add a query: each column shows where that spot "
                    "looked at that step (each map scaled to its own maximum).")
        state = gr.State(TimelineState())
        with gr.Row():
            seed = gr.Number(value=7, precision=0, label="Seed", elem_id="timeline-seed", scale=1)
            layer = gr.Dropdown(layer_names, value=layer_names[0] if layer_names else None, label="Attention layer",
                                elem_id="timeline-layer", scale=1)
            show = gr.Button("Show timeline", elem_id="timeline-show", scale=1)
            clear = gr.Button("Clear queries", size="sm", scale=1)
        with gr.Row():
            image = clickable_image_component("timeline-image", "Newest snapshot: click to add a query",
                                              "Press Show timeline, then click the newest image to add queries.",
                                              scale=1)
            strip = gr.Image(label="Every snapshot, oldest on the left", interactive=False, format="png",
                             elem_id="timeline-strip", buttons=["fullscreen"], scale=3,
                             show_label=False)  # its label covered the first columns' step numbers
        gif = gr.File(label="Animated GIF of the paper figure at every snapshot", elem_id="timeline-gif")
        outputs = [image, strip, gif, state]
        show.click(self.show, [checkpoint, seed, layer, state], outputs)
        image.select(self.click, [state, layer], outputs, show_progress="hidden")
        layer.input(self.clear, [state, layer], outputs)
        clear.click(self.clear, [state, layer], outputs)
        demo.load(self.show, [checkpoint, seed, layer, state], outputs)

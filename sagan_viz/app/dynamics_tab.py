"""The Training dynamics tab: gamma of every attention layer and the losses, from a checkpoint's history."""
from __future__ import annotations

import gradio as gr

from ..charts import attention_statistics_figure, gamma_figure, loss_figure
from ..checkpoint import read_checkpoint_summary
from ..families.sagan import FAMILY as SAGAN_FAMILY
from .catalog import STATISTICS_SEEDS, CheckpointEntry, StatisticsCache, all_layer_names, entry_for, snapshot_steps
from .controls import checkpoint_choices
from .errors import shown_to_user
from .session_files import StudioFiles
from .timeline_panel import TimelinePanel

GAMMA_NOTE = (
    "γ multiplies the attention branch (y = γ·o + x) and starts at exactly 0. It is signed: a negative γ "
    "subtracts the attended features, which the next convolution can undo just as well, so the sign alone "
    "says little; its magnitude says how much the layer's output leans on attention. Dotted lines mark the "
    "snapshots that sit beside this checkpoint."
)


def lacks_history(family: str) -> str:
    """The one line a model without a training history gets here."""
    return f"**This {family} checkpoint has no training history** (its file holds weights only): nothing to plot here."


class DynamicsTab:
    """Builds the tab and wires one thin callback."""

    def __init__(self, statistics: StatisticsCache, entries: list[CheckpointEntry], default: CheckpointEntry | None,
                 files: StudioFiles | None = None) -> None:
        self.statistics = statistics
        self.files = files
        self.entries = entries
        self.default = default

    @shown_to_user
    def show(self, checkpoint: str):
        """Charts of the chosen checkpoint's whole history up to its step."""
        if not checkpoint:
            raise ValueError("choose a checkpoint")
        entry = entry_for(checkpoint)
        if entry.family != SAGAN_FAMILY:
            return None, None, lacks_history(entry.family)
        summary = read_checkpoint_summary(checkpoint)
        steps = snapshot_steps(entry, self.entries)
        return gamma_figure(summary.history, steps), loss_figure(summary.history), ""

    @shown_to_user
    def show_statistics(self, checkpoint: str, progress=gr.Progress()):
        """Distance, entropy and query dependence of every snapshot of the run, beside gamma."""
        if not checkpoint:
            raise ValueError("choose a checkpoint")
        entry = entry_for(checkpoint)
        if entry.family != SAGAN_FAMILY:
            raise ValueError(lacks_history(entry.family))
        known = [e for e in self.entries if e.path.parent == entry.path.parent] or [entry]
        return attention_statistics_figure(self.statistics.for_run(entry, known, progress))

    def build(self, demo: gr.Blocks) -> None:
        """Create the components inside the current gr.Blocks; charts fill on page load."""
        checkpoint = gr.Dropdown(
            checkpoint_choices(self.entries), value=str(self.default.path) if self.default else None,
            label="Checkpoint (its history up to its step)", elem_id="dynamics-checkpoint",
        )
        gr.Markdown(GAMMA_NOTE)
        note = gr.Markdown(elem_id="dynamics-note")
        gamma_plot = gr.Plot(label="γ against training step", elem_id="dynamics-gamma")
        statistics_button = gr.Button(
            f"Attention statistics of every snapshot (seeds 0–{len(STATISTICS_SEEDS) - 1}; a few seconds each, then cached)",
            elem_id="dynamics-statistics-run",
        )
        statistics_plot = gr.Plot(label="Attention statistics per snapshot", elem_id="dynamics-statistics")
        loss_plot = gr.Plot(label="Hinge losses", elem_id="dynamics-loss")
        TimelinePanel(self.statistics.models, self.entries, self.files).build(demo, checkpoint,
                                                                           all_layer_names(self.entries))
        checkpoint.change(self.show, [checkpoint], [gamma_plot, loss_plot, note])
        statistics_button.click(self.show_statistics, [checkpoint], [statistics_plot])
        demo.load(self.show, [checkpoint], [gamma_plot, loss_plot, note])

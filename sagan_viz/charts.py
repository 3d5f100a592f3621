"""Plotly charts of a run's history: gamma, losses, and attention statistics per snapshot."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .history import TrainingHistory
from .layer_names import network_of


def gamma_figure(history: TrainingHistory | None, snapshot_steps: list[int] = ()) -> go.Figure:
    """gamma of every attention layer against training step, signed, with snapshot steps marked."""
    figure = go.Figure()
    history = history or TrainingHistory()
    layers = history.gamma
    if not layers:
        figure.add_annotation(text="no attention layers", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        figure.update_layout(title="γ per attention layer", xaxis_visible=False, yaxis_visible=False)
        return figure
    steps = history.steps
    for name, values in layers.items():
        points = [(step, value) for step, value in zip(steps, values) if value is not None]
        figure.add_trace(go.Scatter(
            x=[step for step, _ in points], y=[value for _, value in points], name=name, mode="lines",
            line_dash="solid" if network_of(name) == "G" else "dash",
        ))
    figure.add_hline(y=0, line_color="grey", line_width=1)
    for step in snapshot_steps:
        figure.add_vline(x=step, line_dash="dot", line_color="grey", line_width=1)
    figure.update_layout(
        title="γ per attention layer (0 = attention off; dotted: snapshots)",
        xaxis_title="step", yaxis_title="γ", legend_title="layer",
    )
    return figure


def loss_figure(history: TrainingHistory | None) -> go.Figure:
    """Hinge losses of D and G against training step (steps without a value skipped)."""
    figure = go.Figure()
    history = history or TrainingHistory()
    steps = history.steps
    for values, name in ((history.loss_d, "D loss"), (history.loss_g, "G loss")):
        points = [(step, value) for step, value in zip(steps, values) if value is not None]
        figure.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], name=name, mode="lines"))
    if not steps:
        figure.add_annotation(text="no losses recorded", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_layout(title="hinge losses", xaxis_title="step", yaxis_title="loss")
    return figure


STATISTICS = (
    ("distance", "mean attention distance (image widths)"),
    ("entropy", "β entropy (0 = one key, 1 = uniform)"),
    ("query_dependence", "query dependence (mean JS divergence, bits)"),
)


def attention_statistics_figure(statistics_by_step: dict[int, dict[str, dict[str, float]]]) -> go.Figure:
    """Distance, entropy and query dependence of every layer against snapshot step, one panel each."""
    figure = make_subplots(rows=len(STATISTICS), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=[title for _, title in STATISTICS])
    steps = sorted(statistics_by_step)
    layers = sorted({name for stats in statistics_by_step.values() for name in stats},
                    key=lambda name: (not name.startswith("G."), name))
    for row, (key, _) in enumerate(STATISTICS, start=1):
        for index, layer in enumerate(layers):
            points = [(step, statistics_by_step[step][layer][key]) for step in steps if layer in statistics_by_step[step]]
            figure.add_trace(go.Scatter(
                x=[s for s, _ in points], y=[v for _, v in points], name=layer, legendgroup=layer,
                showlegend=row == 1, mode="lines+markers", line_dash="solid" if layer.startswith("G.") else "dash",
                line_color=CHART_COLOURS[index % len(CHART_COLOURS)],
            ), row=row, col=1)
    if not layers:
        figure.add_annotation(text="no attention layers", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_layout(height=720, title="attention statistics per snapshot (EMA-G image, averaged over seeds)",
                         legend_title="layer")
    figure.update_xaxes(title_text="step", row=len(STATISTICS), col=1)
    return figure


CHART_COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")

"""Charts read the training history and the per-snapshot attention statistics."""
import pytest

from sagan_viz.charts import attention_statistics_figure, gamma_figure, loss_figure
from sagan_viz.history import TrainingHistory


def history(layers):
    return TrainingHistory.from_dict({"interval": 25, "step": [0, 25, 50, 75], "loss_D": [None, 1.1, 1.0, 0.9],
                                      "loss_G": [0.3, 0.4, 0.5, 0.6], "gamma": layers or {}})


def test_gamma_figure_has_one_trace_per_layer_and_marks_snapshots():
    figure = gamma_figure(history({"G.attn0": [0, 0.01, -0.02, 0.05], "D.attn0": [0, 0.1, 0.2, 0.3]}),
                          snapshot_steps=[25, 75])
    assert [trace.name for trace in figure.data] == ["G.attn0", "D.attn0"]
    assert list(figure.data[0].y) == [0, 0.01, -0.02, 0.05]
    vertical = sorted(shape.x0 for shape in figure.layout.shapes if shape.x0 == shape.x1)
    assert vertical == [25, 75]
    assert any(shape.y0 == 0 and shape.y1 == 0 for shape in figure.layout.shapes)  # the zero line


@pytest.mark.parametrize("layers", [{}, None])
def test_gamma_figure_without_layers_says_so(layers):
    figure = gamma_figure(history(layers))
    assert len(figure.data) == 0
    assert "no attention layers" in figure.layout.annotations[0].text
    assert "no attention layers" in gamma_figure(None).layout.annotations[0].text


def test_loss_figure_skips_missing_values():
    figure = loss_figure(history({}))
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["D loss"].x) == [25, 50, 75]
    assert list(by_name["G loss"].y) == [0.3, 0.4, 0.5, 0.6]
    assert len(loss_figure(None).data) == 2


def test_attention_statistics_figure_plots_each_statistic_of_each_layer_against_step():
    stats = {
        0: {"G.attn0": {"distance": 0.5, "entropy": 1.0, "query_dependence": 0.0, "gamma": 0.0}},
        500: {"G.attn0": {"distance": 0.3, "entropy": 0.8, "query_dependence": 0.2, "gamma": 0.1},
              "D.attn0": {"distance": 0.4, "entropy": 0.9, "query_dependence": 0.1, "gamma": -0.1}},
    }
    figure = attention_statistics_figure(stats)
    g_traces = [trace for trace in figure.data if trace.name == "G.attn0"]
    assert len(g_traces) == 3  # one per statistic
    assert list(g_traces[1].x) == [0, 500] and list(g_traces[1].y) == [1.0, 0.8]
    d_distance = next(trace for trace in figure.data if trace.name == "D.attn0")
    assert list(d_distance.x) == [500]


def test_attention_statistics_figure_of_a_model_without_attention_says_so():
    assert "no attention layers" in attention_statistics_figure({0: {}}).layout.annotations[-1].text


def test_a_history_round_trips_and_refuses_series_that_do_not_fit():
    recorded = TrainingHistory.new(["G.attn0"], interval=5)
    recorded.record(0, None, None, {"G.attn0": 0.0})
    recorded.record(5, 1.2, -0.3, {"G.attn0": 0.01})
    assert TrainingHistory.from_dict(recorded.to_dict()) == recorded and recorded.last_step == 5
    with pytest.raises(ValueError, match="names"):
        recorded.record(10, 1.0, 0.0, {"D.attn0": 0.1})
    stored = recorded.to_dict() | {"loss_G": [0.1]}
    with pytest.raises(ValueError, match="loss_G is not a list of 2 numbers"):
        TrainingHistory.from_dict(stored)
    with pytest.raises(ValueError, match="version"):
        TrainingHistory.from_dict(recorded.to_dict() | {"version": 2})

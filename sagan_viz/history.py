"""A run's training history: losses and every attention layer's γ, recorded every few steps.

Saved as JSON in every checkpoint (this layout, with its version); the trainer appends rows, the charts
read them, and reading checks that every series is as long as the steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

HISTORY_VERSION = 1  # files written before the version was stored have the same layout


def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


@dataclass
class TrainingHistory:
    """Rows of (step, hinge losses of D and G, γ of every attention layer); losses are None at step 0."""

    interval: int = 0  # steps between rows (0: unknown)
    steps: list[int] = field(default_factory=list)
    loss_d: list[float | None] = field(default_factory=list)
    loss_g: list[float | None] = field(default_factory=list)
    gamma: dict[str, list[float]] = field(default_factory=dict)  # layer name -> one value per row

    @classmethod
    def new(cls, layer_names: list[str], interval: int) -> TrainingHistory:
        """An empty history for these attention layers, recorded every interval steps."""
        return cls(interval=interval, gamma={name: [] for name in layer_names})

    def record(self, step: int, loss_d: float | None, loss_g: float | None, gamma: dict[str, float]) -> None:
        """Append one row; gamma must name every layer of the history."""
        if set(gamma) != set(self.gamma):
            raise ValueError(f"gamma names {sorted(gamma)}, the history records {sorted(self.gamma)}")
        self.steps.append(int(step))
        self.loss_d.append(loss_d)
        self.loss_g.append(loss_g)
        for name, value in gamma.items():
            self.gamma[name].append(value)

    @property
    def last_step(self) -> int | None:
        """The step of the newest row, None for an empty history."""
        return self.steps[-1] if self.steps else None

    def to_dict(self) -> dict:
        """The JSON layout stored in checkpoints."""
        return {"version": HISTORY_VERSION, "interval": self.interval, "step": list(self.steps),
                "loss_D": list(self.loss_d), "loss_G": list(self.loss_g),
                "gamma": {name: list(values) for name, values in self.gamma.items()}}

    @classmethod
    def from_dict(cls, data) -> TrainingHistory:
        """Read the stored layout; ValueError naming the first series that does not fit ({} is an empty history)."""
        if not isinstance(data, dict):
            raise ValueError("history is not a JSON object")
        version = data.get("version", HISTORY_VERSION)
        if version != HISTORY_VERSION:
            raise ValueError(f"history version {version!r}, this sagan-viz reads {HISTORY_VERSION}")
        steps = data.get("step", [])
        if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise ValueError("history's steps are not a list of integers")
        gamma = data.get("gamma", {})
        if not isinstance(gamma, dict):
            raise ValueError("history's gamma is not a JSON object")
        interval = data.get("interval", 0)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 0:
            raise ValueError(f"history's interval {interval!r} is not a whole number >= 0")
        series = {name: data.get(name, [None] * len(steps)) for name in ("loss_D", "loss_G")}
        series.update({f"gamma of {name}": values for name, values in gamma.items()})
        for name, values in series.items():
            if not isinstance(values, list) or len(values) != len(steps) or not all(map(_is_number, values)):
                raise ValueError(f"history's {name} is not a list of {len(steps)} numbers")
        if any(value is not None and math.isinf(value) for values in gamma.values() for value in values):
            raise ValueError("history's gamma holds an infinite value")
        return cls(interval=interval, steps=list(steps), loss_d=list(series["loss_D"]), loss_g=list(series["loss_G"]),
                   gamma={str(name): list(values) for name, values in gamma.items()})

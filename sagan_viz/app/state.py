"""Per-user state of the studio (lives in gr.State, so two tabs never share queries)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..inspect import Generation
from ..queries import MAX_QUERIES


@dataclass
class InspectState:
    """What one user sees in the Inspect tab."""

    checkpoint: str | None = None  # path of the loaded checkpoint
    generation: Generation | None = None  # the shown image and beta of every layer
    queries: list[tuple[float, float]] = field(default_factory=list)  # generated-image pixels (x, y)
    mode: str = "row"  # views.MODES: the beta row of a query, the column of a key, or the attention effect
    picture: str | None = None  # the served PNG of generation.image (written once per generation)
    show_grid: bool = False  # whether the raw beta grid of the newest query is drawn and sent


@dataclass
class CompareState:
    """What one user sees in the Compare tab: one generation per chosen checkpoint."""

    checkpoints: list[str] = field(default_factory=list)
    generations: list[Generation | None] = field(default_factory=list)  # None: failed to load
    queries: list[tuple[float, float]] = field(default_factory=list)  # pixels (x, y) of the first generation
    picture: str | None = None  # the served PNG of the first generation's image (written once per Compare)


def add_query(queries: list[tuple[float, float]], pixel: tuple[float, float]) -> list[tuple[float, float]]:
    """Append a query; past MAX_QUERIES the oldest one makes room, as in a rolling set of markers."""
    return (list(queries) + [pixel])[-MAX_QUERIES:]

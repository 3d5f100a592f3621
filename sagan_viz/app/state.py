"""Per-user state of the studio (lives in gr.State, so two tabs never share queries)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TypeVar

from ..inspect import Generation
from ..queries import MAX_QUERIES


@dataclass
class InspectState:
    """What one user sees in the Inspect tab."""

    checkpoint: str | None = None  # path of the loaded checkpoint
    generation: Generation | None = None  # the shown image and beta of every layer
    queries: list[tuple[float, float]] = field(default_factory=list)  # generated-image pixels (x, y), by slot
    recency: tuple[int, ...] = ()  # the queries' slots, oldest first (add_query)
    mode: str = "row"  # views.MODES: the beta row of a query, the column of a key, or the attention effect
    picture: str | None = None  # the served PNG of generation.image (written once per generation)
    show_grid: bool = False  # whether the raw beta grid of the newest query is drawn and sent


@dataclass
class CompareState:
    """What one user sees in the Compare tab: one generation per chosen checkpoint."""

    checkpoints: list[str] = field(default_factory=list)
    generations: list[Generation | None] = field(default_factory=list)  # None: failed to load
    queries: list[tuple[float, float]] = field(default_factory=list)  # pixels (x, y) of the first generation, by slot
    recency: tuple[int, ...] = ()  # the queries' slots, oldest first (add_query)
    picture: str | None = None  # the served PNG of the first generation's image (written once per Compare)


WithQueries = TypeVar("WithQueries")  # a tab's state with queries (pixels by slot) and recency (slots, oldest first)


def query_recency(queries, recency) -> tuple[int, ...]:
    """The queries' slots from the oldest to the newest; slot order where recency does not describe them."""
    return tuple(recency) if sorted(recency) == list(range(len(queries))) else tuple(range(len(queries)))


def add_query(state: WithQueries, pixel: tuple[float, float]) -> WithQueries:
    """state with pixel as its newest query: in a new slot while fewer than MAX_QUERIES are shown, else in the
    slot of the oldest. A query keeps its slot (its colour, number and panel) while it is shown, so markers
    never change colour under the user's eyes and a click draws one new panel, not five."""
    queries, order = list(state.queries), list(query_recency(state.queries, state.recency))
    if len(queries) < MAX_QUERIES:
        order.append(len(queries))
        queries.append(pixel)
    else:
        slot = order.pop(0)
        queries[slot] = pixel
        order.append(slot)
    return dataclasses.replace(state, queries=queries, recency=tuple(order))


def remove_newest_query(state: WithQueries) -> WithQueries:
    """state without its newest query; the queries in later slots move up one."""
    order = list(query_recency(state.queries, state.recency))
    if not order:
        return state
    slot = order.pop()
    queries = [pixel for index, pixel in enumerate(state.queries) if index != slot]
    return dataclasses.replace(state, queries=queries, recency=tuple(index - (index > slot) for index in order))


def newest_slot(state) -> int | None:
    """The slot of the newest query (None without queries)."""
    order = query_recency(state.queries, state.recency)
    return order[-1] if order else None

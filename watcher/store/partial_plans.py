"""What live partials plan and hold per series (``watcher.store.partials``).

A ``Series`` is what a bucket's partials depend on; ``Held`` is one series' buckets, sliding sums
and answered windows; a ``Shape`` is a rule query's plan but for its window's times, made once;
a ``Plan`` says how one query of a tick is answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.query import SKETCH_ERROR, Aggregate, Group, Query
from watcher.query_filters import Filter
from watcher.store.buckets import Runs
from watcher.store.partial_values import Finisher, Layout, Part
from watcher.store.window_sums import Key, Sum


@dataclass(frozen=True)
class Series:
    """What a bucket's partials depend on: the rows (``where``), the groups and the aggregates."""

    where: Filter
    group_by: tuple[str, ...]
    aggregates: frozenset[Aggregate]
    size: timedelta
    hashed: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Hashed once: a series is a key of several maps per query and per tick, and a filter's
        # hash walks its whole tree every time.
        object.__setattr__(self, "hashed", hash((self.where, self.group_by, self.aggregates, self.size)))

    def __hash__(self) -> int:
        return self.hashed


@dataclass
class Held:
    """One series' buckets (start -> group key -> partials) and when it was last asked."""

    every: timedelta
    last_end: datetime
    layout: Layout
    buckets: dict[datetime, dict[Key, Part]] = field(default_factory=dict)
    runs: Runs = field(init=False)
    """Which buckets are held, as runs: whether a window's are all held, at a glance."""
    sums: dict[int, Sum] = field(default_factory=dict)
    """The latest window of each length (in buckets), summed: the next one slides from it."""
    answers: dict[
        tuple[datetime, datetime, tuple[str, ...]], tuple[Mapping[str, Aggregate], tuple[Group, ...]]
    ] = field(default_factory=dict)
    """Windows answered, by window and aggregates: a spike's earlier windows are answered again
    at later ticks, a catch-up's too."""
    answers_kept: int = 0
    """Answers kept by the last pruning: the next one waits until there are twice as many."""
    limits: tuple[int, int] = (0, 0)
    """Buckets and answers past which the series is pruned again (set by the last pruning)."""

    def __post_init__(self) -> None:
        self.runs = Runs(self.every)  # ``every``: the bucket length


class Shape:
    """A query's plan but for its window's times -- bucket length, buckets per window, series and
    each aggregate's place in the partials -- worked out once and reused while the rule asks with
    the same filter and aggregates. Making every query's series at every tick (each aggregate's
    partial form, a filter tree hashed) was most of a backtest's Python time."""

    __slots__ = ("aggregates", "count", "exact", "named", "names", "sketch", "where")

    def __init__(self, query: Query, count: int = 0, exact: Series | None = None) -> None:
        self.where, self.aggregates = query.where, query.aggregates
        self.names = tuple(query.aggregates)
        self.count = count
        """Buckets in the window (from its start): listed only when needed, a 30-minute window
        every 5 s has 360, and listing them for 1,000 rules was most of a live tick."""
        self.exact = exact
        """The series with exact values; None: the query is asked directly."""
        self.sketch: Series | None = None  # its percentiles' sketch, once its values were too many
        self.named: dict[Series, list[tuple[str, int, Finisher]]] = {}
        """Per series answered from: each aggregate's name, place in a part and final step."""

    def fits(self, query: Query) -> bool:
        """Whether ``query`` asks what this shape was made for (its filter the same object)."""
        if self.where is not query.where:
            return False
        if self.aggregates is not query.aggregates:
            if self.aggregates != query.aggregates:
                return False
            self.aggregates = query.aggregates  # the other windows of this tick: the same mapping
        return True


@dataclass(slots=True)
class Plan:
    """How one query is answered: from a series' buckets, or asked directly (``series`` None)."""

    query: Query
    shape: Shape
    series: Series | None = None
    known: tuple[Group, ...] | None = None
    """Its window's answer, when answered before (a spike's history): no bucket is looked at."""

    @property
    def sketch(self) -> float:
        return SKETCH_ERROR if self.series is not self.shape.exact else 0.0

"""The backend-neutral query: what a rule asks of a log store, and what it gets back.

Detectors build ``Query`` objects; each ``LogStore`` compiles them to its own language
(fused DuckDB SQL, the Elasticsearch query DSL). Only aggregated numbers come back,
never raw documents, so a rule's cost does not grow with log volume.

Filters (``Filter``, written in rule files as plain mappings) are in ``watcher.query_filters``;
the document-level aggregates in ``watcher.query_documents``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from watcher.query_documents import VALUES_LIMIT, FirstSeen, Latest, Seen, Timeline
from watcher.query_filters import MATCH_ALL, Filter, filter_fields

# --------------------------------------------------------------------------- aggregates


@dataclass(frozen=True)
class Count:
    """Documents in the window (per group)."""


@dataclass(frozen=True)
class CountWhere:
    """Documents in the window that also match ``filter``."""

    filter: Filter


@dataclass(frozen=True)
class Percentiles:
    """Percentiles of a numeric field; ``qs`` in 0..100. Result: ``{q: value}``."""

    field: str
    qs: tuple[float, ...]


@dataclass(frozen=True)
class Stats:
    """avg/min/max/sum/count of a numeric field. Result: a ``dict`` with those keys."""

    field: str


@dataclass(frozen=True)
class Cardinality:
    """Distinct non-null values of a field."""

    field: str


@dataclass(frozen=True)
class Histogram:
    """Counts of a numeric field in fixed bins.

    ``edges`` e0 < e1 < ... < ek give ``len(edges) + 1`` buckets:
    (-inf, e0), [e0, e1), ..., [e(k-1), ek), [ek, +inf) -- underflow first, overflow last.
    Missing or non-numeric values are not counted (use ``Missing``).
    """

    field: str
    edges: tuple[float, ...]


@dataclass(frozen=True)
class Terms:
    """Counts of the ``size`` most frequent values of a field, as strings."""

    field: str
    size: int = 20


@dataclass(frozen=True)
class Missing:
    """Documents where the field is absent or null."""

    field: str


SKETCH_ERROR = 0.01
"""The relative error of a percentile answered from a log-spaced sketch (``Values.relative_error``)."""


@dataclass(frozen=True)
class Values:
    """Every distinct value of a field with its count: the exact, mergeable form of ``Terms``,
    ``Cardinality`` and (``numeric``) ``Percentiles`` that per-bucket partials keep
    (``watcher.store.partials``). Result: ``{value: count}`` -- values as strings, or as floats
    when ``numeric`` -- or ``None`` when there are more than ``limit`` distinct values.

    ``relative_error`` (numeric only; embedded store) rounds each number to the middle of its
    log-spaced bin first (``SKETCH_ERROR``: within 1 % of the number), so the distinct values,
    and what partials keep, stay a few hundred whatever the field's cardinality: the mergeable
    sketch a percentile falls back on when its exact values are too many.

    ``distinct`` (embedded store): the distinct values only, as a list, without their counts --
    all a ``Cardinality`` needs, and small enough to keep per bucket for ten times as many values
    (``DISTINCT_LIMIT``)."""

    field: str
    numeric: bool = False
    limit: int = VALUES_LIMIT
    relative_error: float = 0.0
    distinct: bool = False


Sample: TypeAlias = dict[str, Any]
"""One document of a ``Samples`` answer: dotted field name -> its JSON value (a scalar, or a list)."""


@dataclass(frozen=True)
class Samples:
    """Up to ``size`` documents of the group that also match ``filter``: the evidence an alert
    shows (``watcher.detect.evidence``). Sorted by ``sort`` (a field; "" is the store's time field),
    largest first unless ``ascending``; only ``fields`` (all of them when empty), flattened to
    dotted names. Result: ``Documents``. Not mergeable: per-bucket partials ask it directly."""

    filter: Filter = MATCH_ALL
    size: int = 3
    fields: tuple[str, ...] = ()
    sort: str = ""
    ascending: bool = False


@dataclass(frozen=True)
class Documents:
    """A ``Samples`` answer: its documents, in the query's order."""

    documents: tuple[Sample, ...] = ()


Aggregate: TypeAlias = (
    Count
    | CountWhere
    | Percentiles
    | Stats
    | Cardinality
    | Histogram
    | Terms
    | Missing
    | Values
    | Timeline
    | FirstSeen
    | Latest
    | Samples
)


def aggregate_fields(agg: Aggregate) -> set[str]:
    """Every field an aggregate reads."""
    if isinstance(agg, Count):
        return set()
    if isinstance(agg, CountWhere):
        return filter_fields(agg.filter)
    if isinstance(agg, Timeline | FirstSeen):
        return set(agg.fields)
    if isinstance(agg, Samples):
        return filter_fields(agg.filter) | ({agg.sort} if agg.sort else set())
    return {agg.field}


# --------------------------------------------------------------------------- query and results


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def ending_at(cls, end: datetime, length: timedelta) -> Window:
        return cls(end - length, end)

    def shifted(self, offset: timedelta) -> Window:
        return Window(self.start - offset, self.end - offset)


BUCKET = "@bucket"
"""The group key a bucketed query's answer adds: the bucket's start, in epoch milliseconds."""


@dataclass(frozen=True)
class Query:
    """One question to a store: aggregates over ``where`` within ``window``, split by ``group_by``.

    ``id`` is unique within a batch; results come back in the order queries were given.

    ``buckets`` asks for the answer per consecutive bucket of that length from ``window.start``
    (it must divide the window, in whole milliseconds): each group's key gains ``BUCKET``, and
    empty buckets are absent. ``every`` says how often the same question is asked again with its
    window moved on by that much, which lets ``watcher.store.partials`` answer it from per-bucket
    partial aggregates instead of re-reading the whole window. ``only_if`` lets a store skip it.
    """

    id: str
    window: Window
    aggregates: Mapping[str, Aggregate]
    where: Filter = MATCH_ALL
    group_by: tuple[str, ...] = ()
    buckets: timedelta | None = None
    every: timedelta | None = None
    only_if: Condition | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Condition:
    """Needed only when a group of another query's answer (``query``, its id in the same batch)
    meets ``met``: an alert's evidence, needed only when a group alerts. A store that knows that
    answer before it reads the window (``watcher.store.partials``, from its buckets) skips the
    query otherwise and answers it with no groups; any other store asks it as it is."""

    query: str
    met: Callable[[Group], bool]


AggValue: TypeAlias = (
    int
    | float
    | dict[float, float | None]
    | dict[str, float | None]
    | dict[str, int]
    | dict[float, int]
    | list[int]
    | tuple[Seen, ...]
    | str
    | Documents
    | None
)
"""What an aggregate yields: Count/CountWhere/Missing/Cardinality -> int; Percentiles -> {q: value};
Stats -> {"avg","min","max","sum","count"} (None when no numeric value); Histogram -> list of
len(edges)+1 bucket counts (see ``Histogram``); Terms -> {value: count}; Values -> {value: count}
or None (see ``Values``); Timeline, FirstSeen -> tuple of ``Seen`` or None; Latest -> str or None;
Samples -> ``Documents``."""


@dataclass(frozen=True)
class Group:
    """One group of a result: its key (group_by field -> value as string, "" for a missing value)."""

    key: Mapping[str, str]
    values: Mapping[str, AggValue]


@dataclass(frozen=True)
class QueryResult:
    """The answer to one ``Query``: groups, or an error from the store (never both).

    A query without ``group_by`` always has exactly one group (counts of 0 when the window is
    empty), so a silent source reads as zero traffic, not as missing data. An error is never
    "no data": detectors turn it into an error state that neither fires nor resolves.
    """

    query_id: str
    groups: Sequence[Group] = field(default_factory=tuple)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

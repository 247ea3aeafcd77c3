"""Aggregates as per-bucket partials: what the store is asked per bucket, how buckets add up (and
come off a sliding window), and the window's answer computed from the sum (``watcher.store.partials``
keeps the buckets).

Counts, ``CountWhere``, ``Missing``, histogram bins and stats (sum, min, max, count) add up as
they are. Terms, cardinality and percentiles need every value: each is asked as ``Values`` (every
distinct value with its count), whose sum is exact, so a window's top terms, distinct count and
percentiles (``quantile_cont``'s linear interpolation, as DuckDB computes it) are those of
re-reading the window. A bucket with more than ``VALUES_LIMIT`` distinct values answers ``None``:
its window cannot be answered from partials and is asked of the store directly. On a store that
lists distinct values without their counts (the embedded one), a cardinality is asked for those
(``Values.distinct``, up to ``DISTINCT_LIMIT``): a bucket keeps them as a tuple and a window's sum
counts, per value, the buckets holding it -- a cardinality of clients, ~2,000 a minute, was
re-read over its whole window at every tick instead.

A series' partials are kept as one list per group, in the order of its ``Layout``: indexing a list
instead of hashing each aggregate (a filter tree for ``CountWhere``) per bucket and per group was
most of the cost of answering from partials. Everything but stats also comes off a sum exactly
(integers; numeric values as a ``Tally`` holding the buckets' ``Sorted`` multisets),
so a window moved on by one bucket is its previous sum plus the newest bucket minus the oldest
(``Layout.slides``); stats' float sums are
added up again in bucket order, so they stay those of summing the buckets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from sys import intern
from typing import Any

from watcher.query import (
    Aggregate,
    AggValue,
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Stats,
    Terms,
    Values,
)
from watcher.query_documents import VALUES_LIMIT
from watcher.store.multiset import Sorted, Tally

Part = list[Any]
"""One group's partials in one bucket (or summed over several), in the order of its ``Layout``."""

Finisher = Callable[[Any], AggValue]
"""``final`` for one aggregate (``finisher``)."""

_COUNT, _BINS, _STATS, _VALUES, _SORTED, _DISTINCT = range(6)

DISTINCT_LIMIT = 10 * VALUES_LIMIT
"""Distinct values a cardinality's bucket (per group) keeps, on a store that lists them without
their counts (``Values.distinct``): a bucket is then a tuple of values, a fraction of a dict."""


def partial_of(
    aggregate: Aggregate, limit: int = VALUES_LIMIT, sketch: float = 0.0, distinct: int = 0
) -> Aggregate:
    """What the store is asked per bucket so that ``aggregate`` can be computed over any buckets;
    with ``sketch``, percentiles are asked as numbers rounded within that relative error; with
    ``distinct``, a cardinality is asked as up to that many distinct values without counts."""
    if isinstance(aggregate, Cardinality) and distinct:
        return Values(aggregate.field, limit=distinct, distinct=True)
    if isinstance(aggregate, Terms | Cardinality):
        return Values(aggregate.field, limit=limit)
    if isinstance(aggregate, Percentiles):
        return Values(aggregate.field, numeric=True, limit=limit, relative_error=sketch)
    if isinstance(aggregate, Count | CountWhere | Missing | Stats | Histogram | Values):
        return aggregate
    raise ValueError(f"no partial form for {type(aggregate).__name__}")


class Layout:
    """The partial aggregates of a series, in one fixed order: how the store's answer for a
    bucket becomes a ``Part``, how parts add up and come off, and each window's answer."""

    def __init__(self, aggregates: Iterable[Aggregate]) -> None:
        self.order: tuple[Aggregate, ...] = tuple(sorted(set(aggregates), key=repr))
        self.index = {aggregate: i for i, aggregate in enumerate(self.order)}
        self.named = {f"p{i}": i for i in range(len(self.order))}  # the store's names for them
        self.names = tuple(self.named)
        self.kinds = tuple(_kind(aggregate) for aggregate in self.order)
        self.converted = tuple(i for i, kind in enumerate(self.kinds) if kind >= _SORTED)
        """The partials kept in another form than the store answers them (``part``)."""
        self.asked: Mapping[str, Aggregate] = dict(zip(self.names, self.order, strict=True))
        """What the store is asked per bucket, by those names: the same mapping at every tick."""
        self.slides = _STATS not in self.kinds
        """Whether a sum can lose a bucket exactly (every partial but stats' float sums)."""
        self.limited = any(kind >= _VALUES for kind in self.kinds)
        """Whether a sum can be unknown (a ``Values`` past its limit: ``answerable``)."""

    def part(self, values: Mapping[str, Any]) -> Part:
        """A bucket's group as kept, from the store's values named ``p<index>``. The stores
        answer them in that order: then the values are taken as they are and only those kept in
        another form (numbers as a ``Sorted`` multiset, distinct values as a tuple) converted."""
        if tuple(values) == self.names:
            part = list(values.values())
            for index in self.converted:
                value = part[index]
                if value is not None:
                    part[index] = Sorted.of(value) if self.kinds[index] == _SORTED else _interned(value)
            return part
        part = [None] * len(self.order)
        for name, value in values.items():
            index = self.named[name]
            kind = self.kinds[index]
            if value is not None and kind >= _SORTED:
                value = Sorted.of(value) if kind == _SORTED else _interned(value)
            part[index] = value
        return part

    def add(self, total: Part, part: Part) -> None:
        """Add one bucket's part of a group into ``total`` (in place; ``part`` is not changed)."""
        for i, kind in enumerate(self.kinds):
            mine, theirs = total[i], part[i]
            if kind == _COUNT:
                total[i] = mine + theirs
            elif mine is None or theirs is None:
                if kind >= _VALUES:
                    total[i] = None  # a Values past its limit: the sum is unknown too
            elif kind == _BINS:
                total[i] = [a + b for a, b in zip(mine, theirs, strict=True)]
            elif kind == _STATS:
                total[i] = _stats_sum(mine, theirs)
            elif kind == _SORTED:
                mine.add(theirs)
            elif kind == _DISTINCT:
                mine.update(theirs)  # a Counter: how many of the window's buckets hold each value
            else:
                for value, count in theirs.items():
                    mine[value] = mine.get(value, 0) + count

    def subtract(self, total: Part, part: Part) -> None:
        """Take a bucket's part off ``total`` (in place): a window moving past that bucket."""
        for i, kind in enumerate(self.kinds):
            mine, theirs = total[i], part[i]
            if kind == _COUNT:
                total[i] = mine - theirs
            elif mine is None or theirs is None:
                continue  # unknown stays unknown; an unknown bucket never went in
            elif kind == _BINS:
                total[i] = [a - b for a, b in zip(mine, theirs, strict=True)]
            elif kind == _SORTED:
                mine.take_off(theirs)
            elif kind == _DISTINCT:
                for value in theirs:
                    if mine[value] > 1:
                        mine[value] -= 1
                    else:
                        del mine[value]
            elif kind == _VALUES:
                for value, count in theirs.items():
                    left = mine[value] - count
                    if left:
                        mine[value] = left
                    else:
                        del mine[value]

    def copy(self, part: Part) -> Part:
        """A sum to add into, starting from ``part`` (which stays as it is)."""
        return [_copied(value) for value in part]

    def empty(self) -> Part:
        return [_EMPTY[kind](aggregate) for kind, aggregate in zip(self.kinds, self.order, strict=True)]

    def answerable(self, total: Part) -> bool:
        """Whether every partial is known (no ``Values`` past its limit)."""
        kinds = self.kinds
        return all(value is not None for kind, value in zip(kinds, total, strict=True) if kind >= _VALUES)


def _interned(values: Iterable[Any]) -> tuple[Any, ...]:
    """A bucket's distinct values, each string the one object every bucket holding it shares
    (``sys.intern``, freed with its last bucket): 60 buckets of 2,000 client ids held 60 copies of
    each id."""
    return tuple(intern(value) if type(value) is str else value for value in values)


def _copied(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, tuple):
        return Counter(value)
    return Tally(value) if isinstance(value, Sorted) else value


def _kind(aggregate: Aggregate) -> int:
    if isinstance(aggregate, Histogram):
        return _BINS
    if isinstance(aggregate, Stats):
        return _STATS
    if isinstance(aggregate, Values):
        return _DISTINCT if aggregate.distinct else _SORTED if aggregate.numeric else _VALUES
    return _COUNT


_EMPTY: dict[int, Any] = {
    _COUNT: lambda aggregate: 0,
    _BINS: lambda aggregate: [0] * (len(aggregate.edges) + 1),
    _STATS: lambda aggregate: {"sum": 0.0, "min": None, "max": None, "count": 0},
    _VALUES: lambda aggregate: {},
    _SORTED: lambda aggregate: Tally(Sorted.of({})),
    _DISTINCT: lambda aggregate: Counter(),
}


def _stats_sum(first: dict[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    if not second.get("count"):
        return first
    if not first.get("count"):
        return dict(second)
    return {
        "sum": first["sum"] + second["sum"],
        "min": min(first["min"], second["min"]),
        "max": max(first["max"], second["max"]),
        "count": first["count"] + second["count"],
    }


def final(aggregate: Aggregate, value: Any) -> AggValue:
    """The window's answer to ``aggregate`` from the sum of its partial (``None``: an empty window)."""
    if isinstance(aggregate, Count | CountWhere | Missing):
        return int(value or 0)
    if isinstance(aggregate, Histogram):
        return _bins(len(aggregate.edges) + 1, value)
    if isinstance(aggregate, Stats):
        return _stats(value)
    if isinstance(aggregate, Percentiles):
        multiset = value if isinstance(value, Sorted | Tally) else Sorted.of(value or {})
        return {q: multiset.quantile(q / 100) for q in aggregate.qs}
    if isinstance(value, Tally):
        return value.counted()
    if isinstance(value, Sorted):
        return dict(zip(value.values, value.counts, strict=True))
    if isinstance(aggregate, Cardinality) and isinstance(value, Counter):  # distinct values
        return len(value)
    counts: dict[Any, int] = {v: c for v, c in (value or {}).items() if c}
    if isinstance(aggregate, Cardinality):
        return len(counts)
    if isinstance(aggregate, Terms):
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return dict(ranked[: aggregate.size])
    return counts


def finisher(aggregate: Aggregate) -> Finisher:
    """``final`` for ``aggregate``, its kind looked up once: a window's answer is finished per
    group and aggregate at every tick."""
    if isinstance(aggregate, Count | CountWhere | Missing):
        return _count
    if isinstance(aggregate, Histogram):
        return partial(_bins, len(aggregate.edges) + 1)
    return partial(final, aggregate)


def _count(value: Any) -> int:
    return int(value or 0)


def _bins(count: int, value: Any) -> list[int]:
    return list(value) if value is not None else [0] * count


def _stats(value: Mapping[str, Any] | None) -> dict[str, float | None]:
    if not value or not value.get("count"):
        return {"avg": None, "min": None, "max": None, "sum": None, "count": 0}
    count = int(value["count"])
    return {"avg": value["sum"] / count, "min": value["min"], "max": value["max"],
            "sum": value["sum"], "count": count}  # fmt: skip

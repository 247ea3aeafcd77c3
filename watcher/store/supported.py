"""Which backend-neutral queries (``watcher.query``) the embedded store can answer.

``validate`` runs before a query is compiled into the fused DuckDB statement (``watcher.store.sql``),
so a query it refuses gets its own error instead of failing the whole batch: window bounds must be
timezone-aware, buckets tiling the window, ``Eq``/``In`` values strings, numbers or booleans,
percentiles within 0..100, histogram edges strictly increasing and terms at least one bucket wide.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from watcher.query import (
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Samples,
    Stats,
    Terms,
    Values,
)
from watcher.query_documents import FirstSeen, Latest, Timeline
from watcher.query_filters import And, Eq, Exists, In, Not, Or, Range


def validate(query: Query) -> None:
    """Raise ``ValueError`` with a message for a query the store cannot answer."""
    for bound in (query.window.start, query.window.end):
        if bound.tzinfo is None:
            raise ValueError(f"query {query.id!r}: window bounds must be timezone-aware, got {bound}")
    problems = [("buckets", _buckets_problem(query)), ("where", _filter_problem(query.where))]
    problems += [(f"aggregate {name!r}", _aggregate_problem(agg)) for name, agg in query.aggregates.items()]
    for where, problem in problems:
        if problem:
            raise ValueError(f"query {query.id!r}, {where}: {problem}")


def _buckets_problem(query: Query) -> str | None:
    """Buckets must tile the window in whole milliseconds (their grid is in epoch milliseconds)."""
    size = query.buckets
    if size is None:
        return None
    length = query.window.end - query.window.start
    if size <= timedelta(0) or size % timedelta(milliseconds=1) or length % size:
        return f"buckets of {size} do not tile the window of {length} in whole milliseconds"
    if query.window.start.microsecond % 1000:
        return f"a bucketed window must start on a whole millisecond, got {query.window.start}"
    return None


def _filter_problem(flt: Any) -> str | None:
    if isinstance(flt, Eq | In):
        values = (flt.value,) if isinstance(flt, Eq) else flt.values
        bad = [v for v in values if not isinstance(v, str | int | float | bool)]
        return f"values must be strings, numbers or booleans, got {bad[0]!r}" if bad else None
    if isinstance(flt, Not):
        return _filter_problem(flt.filter)
    if isinstance(flt, And | Or):
        return next((problem for child in flt.filters if (problem := _filter_problem(child))), None)
    return None if isinstance(flt, Range | Exists) else f"unsupported filter {type(flt).__name__}"


def _aggregate_problem(agg: Any) -> str | None:
    if isinstance(agg, CountWhere):
        return _filter_problem(agg.filter)
    if isinstance(agg, Percentiles):
        bad = [q for q in agg.qs if not 0 <= q <= 100]
        if not agg.qs:
            return "percentiles need at least one q"
        return f"percentile q must be within 0..100, got {bad[0]}" if bad else None
    if isinstance(agg, Histogram):
        increasing = agg.edges and all(a < b for a, b in zip(agg.edges, agg.edges[1:], strict=False))
        return None if increasing else f"histogram edges must increase strictly, got {agg.edges}"
    if isinstance(agg, Terms):
        return None if agg.size >= 1 else f"terms size must be at least 1, got {agg.size}"
    if isinstance(agg, Values):
        if not 0 <= agg.relative_error < 1 or (agg.relative_error and not agg.numeric):
            return f"a values sketch needs numeric values and a relative error in [0, 1), got {agg}"
        return None if agg.limit >= 1 else f"values limit must be at least 1, got {agg.limit}"
    if isinstance(agg, Timeline | FirstSeen | Latest):
        return _document_problem(agg)
    if isinstance(agg, Samples):
        return _filter_problem(agg.filter) or (
            None if agg.size >= 1 else f"samples size must be at least 1, got {agg.size}"
        )
    known = isinstance(agg, Count | Stats | Cardinality | Missing)
    return None if known else f"unsupported aggregate {type(agg).__name__}"


def _document_problem(agg: Timeline | FirstSeen | Latest) -> str | None:
    times = [agg.before] if isinstance(agg, Latest) else [agg.since] if agg.since is not None else []
    if any(moment.tzinfo is None for moment in times):
        return f"times must be timezone-aware, got {times[0]}"
    if isinstance(agg, Latest):
        return None
    if not agg.fields:
        return "document values need at least one field"
    return None if agg.limit >= 1 else f"values limit must be at least 1, got {agg.limit}"

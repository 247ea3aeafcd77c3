"""Aggregates as per-bucket partials: what the store is asked per bucket, how buckets add up, and
the window's answer computed from the sum (``watcher.store.partials`` keeps the buckets).

Counts, ``CountWhere``, ``Missing``, histogram bins and stats (sum, min, max, count) add up as
they are. Terms, cardinality and percentiles need every value: each is asked as ``Values`` (every
distinct value with its count), whose sum is exact, so a window's top terms, distinct count and
percentiles (``quantile_cont``'s linear interpolation, as DuckDB computes it) are those of
re-reading the window. A bucket with more than ``VALUES_LIMIT`` distinct values answers ``None``:
its window cannot be answered from partials and is asked of the store directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from watcher.query import (
    VALUES_LIMIT,
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

PartialValues = dict[Aggregate, Any]
"""One group's partial aggregates in one bucket (or summed over several), by store aggregate."""


def partial_of(aggregate: Aggregate, limit: int = VALUES_LIMIT) -> Aggregate:
    """What the store is asked per bucket so that ``aggregate`` can be computed over any buckets."""
    if isinstance(aggregate, Terms | Cardinality):
        return Values(aggregate.field, limit=limit)
    if isinstance(aggregate, Percentiles):
        return Values(aggregate.field, numeric=True, limit=limit)
    if isinstance(aggregate, Count | CountWhere | Missing | Stats | Histogram | Values):
        return aggregate
    raise ValueError(f"no partial form for {type(aggregate).__name__}")


def add(total: PartialValues, part: Mapping[Aggregate, Any]) -> None:
    """Add one bucket's partials of a group into ``total`` (in place)."""
    for aggregate, value in part.items():
        if aggregate not in total:
            total[aggregate] = _copy(value)
        else:
            total[aggregate] = _sum(total[aggregate], value)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def _sum(first: Any, second: Any) -> Any:
    if first is None or second is None:
        return None  # a Values past its limit: the sum is unknown too
    if isinstance(first, int) and isinstance(second, int):
        return first + second
    if isinstance(first, list):
        return [a + b for a, b in zip(first, second, strict=True)]
    if "count" in first and "sum" in first:
        return _stats_sum(first, second)
    for value, count in second.items():
        first[value] = first.get(value, 0) + count
    return first


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


def answerable(total: Mapping[Aggregate, Any]) -> bool:
    """Whether every partial is known (no ``Values`` past its limit)."""
    return all(value is not None for aggregate, value in total.items() if isinstance(aggregate, Values))


def final(aggregate: Aggregate, total: Mapping[Aggregate, Any], limit: int = VALUES_LIMIT) -> AggValue:
    """The window's answer to ``aggregate`` from its summed partials (absent: an empty window)."""
    value = total.get(partial_of(aggregate, limit))
    if isinstance(aggregate, Count | CountWhere | Missing):
        return int(value or 0)
    if isinstance(aggregate, Histogram):
        return list(value) if value is not None else [0] * (len(aggregate.edges) + 1)
    if isinstance(aggregate, Stats):
        return _stats(value)
    counts: dict[Any, int] = {v: c for v, c in (value or {}).items() if c}
    if isinstance(aggregate, Cardinality):
        return len(counts)
    if isinstance(aggregate, Terms):
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return dict(ranked[: aggregate.size])
    if isinstance(aggregate, Percentiles):
        ordered = sorted(counts.items())
        return {q: quantile_cont(ordered, q / 100) for q in aggregate.qs}
    return counts


def _stats(value: Mapping[str, Any] | None) -> dict[str, float | None]:
    if not value or not value.get("count"):
        return {"avg": None, "min": None, "max": None, "sum": None, "count": 0}
    count = int(value["count"])
    return {"avg": value["sum"] / count, "min": value["min"], "max": value["max"],
            "sum": value["sum"], "count": count}  # fmt: skip


def quantile_cont(ordered: list[tuple[float, int]], fraction: float) -> float | None:
    """The ``fraction`` quantile of values given sorted with their counts, interpolated linearly
    between the two nearest ranks as DuckDB's ``quantile_cont`` does."""
    total = sum(count for _, count in ordered)
    if not total:
        return None
    rank = (total - 1) * fraction
    low, high = math.floor(rank), math.ceil(rank)
    below, above = _at_rank(ordered, low), _at_rank(ordered, high)
    return below if low == high else below + (above - below) * (rank - low)


def _at_rank(ordered: Iterable[tuple[float, int]], rank: int) -> float:
    seen = 0
    value = 0.0
    for value, count in ordered:
        seen += count
        if rank < seen:
            return value
    return value

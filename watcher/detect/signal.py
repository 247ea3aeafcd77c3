"""A rule's ``signal`` as store aggregates, and the number computed from their answers.

Every signal also asks for the group's document ``count``: ``min_events`` is checked against it,
and a ratio divides by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watcher.query import (
    Aggregate,
    AggValue,
    Cardinality,
    Count,
    CountWhere,
    Percentiles,
    Stats,
)
from watcher.rules.models import Signal

COUNT = "count"
VALUE = "value"


def signal_aggregates(signal: Signal) -> dict[str, Aggregate]:
    """The aggregates needed to compute ``signal`` for one group (always includes ``count``)."""
    aggs: dict[str, Aggregate] = {COUNT: Count()}
    if signal.ratio is not None:
        aggs[VALUE] = CountWhere(signal.ratio.of)
    elif signal.percentile is not None:
        aggs[VALUE] = Percentiles(signal.percentile.field, (signal.percentile.q,))
    elif signal.stat is not None:
        aggs[VALUE] = Stats(signal.stat.field)
    elif signal.cardinality is not None:
        aggs[VALUE] = Cardinality(signal.cardinality.field)
    return aggs


def signal_count(values: Mapping[str, AggValue]) -> int:
    """The group's document count (0 when absent)."""
    count = values.get(COUNT, 0)
    if type(count) is int:  # nearly always: skips the union isinstance, asked per window per group
        return count
    return int(count) if isinstance(count, int | float) else 0


def too_few(count: int, **minimums: int) -> str | None:
    """ "Not enough data" naming the setting that asked for more documents (the largest of
    ``minimums``, e.g. ``min_samples=500, min_events=1``), or None when ``count`` reaches them all:
    a backtest's summary then says which setting kept the rule blind."""
    setting, needed = max(minimums.items(), key=lambda item: item[1])
    return f"not enough data: {count} documents < {setting} {needed}" if count < needed else None


def signal_value(signal: Signal, values: Mapping[str, AggValue]) -> float | None:
    """The signal's number for one group, or ``None`` when it is undefined (a ratio of 0 documents,
    a percentile of no values)."""
    count = values.get(COUNT, 0)
    if type(count) is not int:  # as signal_count, inlined: asked per window per group
        count = int(count) if isinstance(count, int | float) else 0
    if signal.count is not None:
        return float(count)
    raw = values.get(VALUE)
    if signal.ratio is not None:
        if not count or not isinstance(raw, int | float):
            return None
        return float(raw) / count
    if signal.percentile is not None:
        if not isinstance(raw, dict):
            return None
        return _number(_entry(raw, signal.percentile.q))
    if signal.stat is not None:
        if not isinstance(raw, dict):
            return None
        return _number(_entry(raw, signal.stat.fn))
    return _number(raw)


def _entry(mapping: Mapping[Any, Any], key: object) -> object:
    return mapping.get(key)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def describe(signal: Signal) -> str:
    """A short human name for the signal (``p99(latency_ms)``, ``ratio``, ``count``)."""
    if signal.percentile is not None:
        return f"p{signal.percentile.q:g}({signal.percentile.field})"
    if signal.stat is not None:
        return f"{signal.stat.fn}({signal.stat.field})"
    if signal.cardinality is not None:
        return f"cardinality({signal.cardinality.field})"
    return signal.kind

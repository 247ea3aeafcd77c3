"""The store's answers read back into ``watcher.query`` shapes.

One aggregation's answer becomes the ``AggValue`` the query documents (``read_aggregate``); two
buckets of one group key fold into one answer (``merge_values``); a bucket key becomes the string a
group key holds (``key_text``); a failed or partial search becomes the store's own words
(``error_message``, ``shard_failure``). NaN from the store reads as ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from watcher.query import (
    Aggregate,
    AggValue,
    Cardinality,
    Count,
    CountWhere,
    Documents,
    Histogram,
    Missing,
    Percentiles,
    Samples,
    Stats,
    Terms,
    Values,
)
from watcher.store.samples import sample_of

SAMPLES = "s"
"""The name of the ``top_hits`` inside a ``Samples`` aggregation's filter."""

_EMPTY_STATS: dict[str, float | None] = {"avg": None, "min": None, "max": None, "sum": None, "count": 0}


def read_aggregate(aggregate: Aggregate, count: int, body: Mapping[str, Any]) -> AggValue:
    """One aggregation's answer in the shape ``watcher.query.AggValue`` documents."""
    return aggregate_reader(aggregate)(aggregate, count, body)


AggregateReader = Callable[[Any, int, Mapping[str, Any]], AggValue]
"""``read_aggregate`` for one kind of aggregate: (aggregate, document count, its answer) -> value."""


def aggregate_reader(aggregate: Aggregate) -> AggregateReader:
    """The reader of ``aggregate``'s kind, by its exact type: one lookup per aggregate of a
    search, not a chain of ``isinstance`` checks per value read."""
    return _READERS.get(type(aggregate), _terms)


def _count(aggregate: Any, count: int, body: Mapping[str, Any]) -> int:
    return count


def _doc_count(aggregate: Any, count: int, body: Mapping[str, Any]) -> int:
    return int(body.get("doc_count", 0))


def _cardinality(aggregate: Any, count: int, body: Mapping[str, Any]) -> int:
    return int(body.get("value") or 0)


def _histogram(aggregate: Histogram, count: int, body: Mapping[str, Any]) -> list[int]:
    buckets = body.get("buckets", [])
    counts = [int(bucket.get("doc_count", 0)) for bucket in buckets]
    return counts if len(counts) == len(aggregate.edges) + 1 else [0] * (len(aggregate.edges) + 1)


def _terms(aggregate: Any, count: int, body: Mapping[str, Any]) -> dict[str, int]:
    terms: dict[str, int] = {}
    for bucket in body.get("buckets", []):
        text = bucket.get("key_as_string", key_text(bucket.get("key")))
        terms[str(text)] = int(bucket.get("doc_count", 0))
    return terms


def _values(aggregate: Values, count: int, body: Mapping[str, Any]) -> dict[Any, int] | None:
    """Every value with its count, from a ``terms`` asked one past the limit; ``None`` past it."""
    buckets = body.get("buckets", [])
    if len(buckets) > aggregate.limit or int(body.get("sum_other_doc_count") or 0):
        return None
    if aggregate.numeric:
        return {float(bucket["key"]): int(bucket.get("doc_count", 0)) for bucket in buckets}
    return {
        str(bucket.get("key_as_string", key_text(bucket.get("key")))): int(bucket.get("doc_count", 0))
        for bucket in buckets
    }


def _samples(aggregate: Samples, count: int, body: Mapping[str, Any]) -> Documents:
    """The documents of a ``top_hits`` (under its ``filter``, if it has one), as the query's samples."""
    hits = ((body.get(SAMPLES) or body).get("hits") or {}).get("hits") or []
    return Documents(
        tuple(sample_of(hit.get("_source") or {}, aggregate) for hit in hits if isinstance(hit, Mapping))
    )


def _percentiles(aggregate: Percentiles, count: int, body: Mapping[str, Any]) -> dict[float, float | None]:
    values = body.get("values", [])
    by_key: dict[float, float | None] = {}
    if isinstance(values, list):
        by_key = {float(item["key"]): _number(item.get("value")) for item in values}
    elif isinstance(values, Mapping):
        by_key = {float(key): _number(value) for key, value in values.items()}
    return {q: by_key.get(float(q)) for q in aggregate.qs}


def _stats(aggregate: Stats, count: int, body: Mapping[str, Any]) -> dict[str, float | None]:
    numbers = int(body.get("count") or 0)
    if not numbers:
        return dict(_EMPTY_STATS)
    out: dict[str, float | None] = {name: _number(body.get(name)) for name in ("avg", "min", "max", "sum")}
    out["count"] = numbers
    return out


_READERS: dict[type, AggregateReader] = {
    Count: _count,
    CountWhere: _doc_count,
    Missing: _doc_count,
    Cardinality: _cardinality,
    Percentiles: _percentiles,
    Stats: _stats,
    Histogram: _histogram,
    Values: _values,
    Samples: _samples,
    Terms: _terms,
}
"""Each aggregate's reader by its exact type (anything else is read as ``Terms``)."""


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def merge_values(aggregate: Aggregate, first: AggValue, second: AggValue) -> AggValue:
    """Two buckets' answers as one. Counts, histograms, terms and stats add up exactly; for
    cardinality the larger (a lower bound) and for percentiles the first bucket's answer stands:
    approximations, only ever needed when a group key has both missing and empty-string values."""
    if isinstance(aggregate, Cardinality) and isinstance(first, int) and isinstance(second, int):
        return max(first, second)
    if isinstance(aggregate, Samples) and isinstance(first, Documents) and isinstance(second, Documents):
        return Documents((*first.documents, *second.documents)[: aggregate.size])
    if isinstance(aggregate, Values):
        if not isinstance(first, dict) or not isinstance(second, dict):
            return None
        values: dict[Any, int] = {value: int(count or 0) for value, count in first.items()}
        for value, count in second.items():
            values[value] = values.get(value, 0) + int(count or 0)
        return values
    if isinstance(first, int) and isinstance(second, int):
        return first + second
    if isinstance(first, list) and isinstance(second, list):
        return [a + b for a, b in zip(first, second, strict=True)]
    if isinstance(aggregate, Terms) and isinstance(first, dict) and isinstance(second, dict):
        terms: dict[str, int] = {}
        for part in (first, second):
            for value, count in part.items():
                terms[str(value)] = terms.get(str(value), 0) + int(count or 0)
        return dict(sorted(terms.items(), key=lambda item: -item[1])[: aggregate.size])
    if isinstance(aggregate, Stats) and isinstance(first, dict) and isinstance(second, dict):
        return _merge_stats(first, second)
    return first


def _merge_stats(first: Mapping[Any, Any], second: Mapping[Any, Any]) -> dict[str, float | None]:
    parts = [part for part in (first, second) if part.get("count")]
    if len(parts) < 2:
        return dict(parts[0]) if parts else dict(_EMPTY_STATS)
    count = int(first["count"]) + int(second["count"])
    total = float(first["sum"]) + float(second["sum"])
    low, high = min(first["min"], second["min"]), max(first["max"], second["max"])
    return {"avg": total / count, "min": low, "max": high, "sum": total, "count": count}


def key_text(value: Any) -> str:
    """A bucket key as the string a group key holds ("" for a missing value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def error_message(error: Any) -> str:
    """The store's own words for a failed search: the root cause's type and reason."""
    if not isinstance(error, Mapping):
        return str(error)
    causes = error.get("root_cause") or []
    cause = causes[0] if causes and isinstance(causes[0], Mapping) else error
    kind, reason = cause.get("type", error.get("type", "error")), cause.get("reason", error.get("reason", ""))
    return f"{kind}: {reason}" if reason else str(kind)


def shard_failure(response: Mapping[str, Any]) -> str | None:
    """Why a 200 answer is incomplete (failed shards, a search timeout), or ``None`` if whole."""
    if response.get("timed_out"):
        return "the search timed out in the store; partial results discarded"
    shards = response.get("_shards") or {}
    failed = int(shards.get("failed") or 0)
    if failed:
        failures = shards.get("failures") or [{}]
        reason = error_message(failures[0].get("reason", "unknown"))
        return f"{failed} of {shards.get('total', '?')} shards failed: {reason}"
    return None

"""The aggregates of the fused DuckDB statement (``watcher.store.sql``): each one's SQL, registered
once per branch, and how to read its value back from a group's aggregate values.

Counts, percentiles and stats are aggregates over the rows of their branch. Cardinality, terms,
histograms and ``Values`` are aggregates over per-value counts ``c`` (one inner GROUP BY per
(group set, value) shared by every rule reading that value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watcher.query import (
    Cardinality,
    Count,
    CountWhere,
    Documents,
    FirstSeen,
    Histogram,
    Latest,
    Missing,
    Percentiles,
    Samples,
    Stats,
    Terms,
    Timeline,
    Values,
)
from watcher.store.fused_rows import Decoder
from watcher.store.samples import samples_of_json
from watcher.store.sql_documents import document_aggregate

if TYPE_CHECKING:
    from watcher.store.sql import Builder

_STATS = ("avg", "min", "max", "sum", "count")


def _count(index: int) -> Decoder:
    return lambda aggs: int(aggs[index] or 0)


def aggregate(b: Builder, groups: tuple[str, ...], scope: str, agg: Any) -> Decoder:
    """Register an aggregate's SQL; return how to read its value from a group's aggregate values."""
    rows = b.part(groups)
    if not isinstance(agg, Histogram | Cardinality | Terms | Values):
        rows.scopes[scope] = None
    if isinstance(agg, Count):
        return _count(b.aggregate(rows, f"count_if({scope})"))
    if isinstance(agg, CountWhere):
        return _count(b.aggregate(rows, f"count_if({scope} AND {b.predicate(agg.filter)})"))
    if isinstance(agg, Missing):
        return _count(b.aggregate(rows, f"count_if({scope} AND {b.text(agg.field)} IS NULL)"))
    if isinstance(agg, Percentiles):
        fractions = ", ".join(repr(q / 100) for q in agg.qs)
        values = f"CASE WHEN {scope} THEN {b.number(agg.field)} END"
        index = b.aggregate(rows, f"quantile_cont({values}, [{fractions}])")
        return lambda aggs: dict(zip(agg.qs, aggs[index] or [None] * len(agg.qs), strict=True))
    if isinstance(agg, Stats):
        values = f"CASE WHEN {scope} THEN {b.number(agg.field)} END"
        parts = {fn: b.aggregate(rows, f"{fn}({values})") for fn in _STATS}
        return lambda aggs: {fn: aggs[i] if fn != "count" else int(aggs[i] or 0) for fn, i in parts.items()}
    if isinstance(agg, Timeline | FirstSeen | Latest):
        return document_aggregate(b, groups, scope, agg)
    if isinstance(agg, Samples):
        return _samples(b, rows, scope, agg)
    return _value_aggregate(b, groups, scope, agg)


def _samples(b: Builder, rows: Any, scope: str, agg: Samples) -> Decoder:
    """The row ids of the group's first ``size`` rows in the sort order (``arg_max`` with a count
    keeps a heap per group, not the rows); the statement swaps them for the documents
    (``Builder.render``), so only those documents are read."""
    key = b.number(agg.sort) if agg.sort and agg.sort != b.time_field else "ts"
    pick = "arg_min" if agg.ascending else "arg_max"
    where = f"{scope} AND {b.predicate(agg.filter)}"
    index = b.aggregate(rows, f"{pick}(rid, CASE WHEN {where} THEN {key} END, {int(agg.size)})")
    b.samples.add(index)
    return lambda aggs: Documents(samples_of_json(aggs[index] or (), agg))


def _value_aggregate(b: Builder, groups: tuple[str, ...], scope: str, agg: Any) -> Decoder:
    """Cardinality, terms, histograms and values: outer aggregates over per-value counts ``c``."""
    if isinstance(agg, Histogram):
        column = b.number(agg.field)
        bucket = " + ".join(f"CAST({column} >= {b.param(float(e))} AS INTEGER)" for e in agg.edges)
        part = b.part(groups, bucket, f"{column} IS NOT NULL")
    elif isinstance(agg, Cardinality | Terms | Values):
        numeric = isinstance(agg, Values) and agg.numeric
        column = b.number(agg.field) if numeric else b.text(agg.field)
        part = b.part(groups, column, f"{column} IS NOT NULL")
    else:
        raise ValueError(f"unsupported aggregate {type(agg).__name__}")
    count = part.count_column(scope)
    if isinstance(agg, Cardinality):
        return _count(b.aggregate(part, f"count_if({count} > 0)"))
    pairs = f"list(struct_pack(v := v, c := {count}) ORDER BY {count} DESC, v) FILTER (WHERE {count} > 0)"
    if isinstance(agg, Terms):
        index = b.aggregate(part, f"list_slice({pairs}, 1, {int(agg.size)})")
        return lambda aggs: {pair["v"]: int(pair["c"]) for pair in aggs[index] or ()}
    if isinstance(agg, Values):
        return _values(b, part, count, agg)
    index = b.aggregate(part, pairs)
    size = len(agg.edges) + 1
    return lambda aggs: _buckets(aggs[index] or (), size)


def _values(b: Builder, part: Any, count: str, agg: Values) -> Decoder:
    """Every value with its count, or ``None`` past ``agg.limit`` distinct values (the list is then
    not even built: ``CASE`` leaves it out)."""
    distinct = b.aggregate(part, f"count_if({count} > 0)")
    pairs = f"list(struct_pack(v := v, c := {count})) FILTER (WHERE {count} > 0)"
    index = b.aggregate(part, f"CASE WHEN count_if({count} > 0) <= {int(agg.limit)} THEN {pairs} END")

    def decode(aggs: Sequence[Any]) -> dict[Any, int] | None:
        if int(aggs[distinct] or 0) > agg.limit:
            return None
        return {pair["v"]: int(pair["c"]) for pair in aggs[index] or ()}

    return decode


def _buckets(pairs: Sequence[dict[str, int]], size: int) -> list[int]:
    counts = [0] * size
    for pair in pairs:
        counts[pair["v"]] = int(pair["c"])
    return counts

"""The backend-neutral query compiled to the Elasticsearch / OpenSearch query DSL, and back.

Queries that share window, ``where`` and ``group_by`` are *fused* into one search body: their
aggregates sit side by side (identical aggregates once), so a tick of many rules costs few
searches. Every body has ``size: 0`` (raw documents never leave the store); filters go in filter
context; the window is a ``range`` on the time field in epoch milliseconds (UTC, no time-zone
guessing); ``group_by`` is a ``composite`` aggregation paged with ``after`` and ``missing_bucket``
(a missing value is the key ""). Field names are resolved through the live mapping
(``FieldCatalog``), which turns analysed text into its ``.keyword`` sub-field.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watcher.query import (
    Aggregate,
    AggValue,
    And,
    Cardinality,
    Count,
    CountWhere,
    Eq,
    Exists,
    Filter,
    Group,
    Histogram,
    In,
    Missing,
    Not,
    Percentiles,
    Query,
    Range,
    Stats,
    Terms,
    Window,
)
from watcher.store.mapping_check import FieldCatalog, FieldMappingError, Use

GROUPS = "g"
CARDINALITY_PRECISION = 40000  # the maximum: counts are exact below it, approximate above
_EMPTY_STATS: dict[str, float | None] = {"avg": None, "min": None, "max": None, "sum": None, "count": 0}

Json = dict[str, Any]


@dataclass
class FusedSearch:
    """Queries answered by one search body: same window, ``where`` and ``group_by``.

    ``aggs`` holds each distinct aggregate once under a short body name; ``names`` maps
    ``(query position, aggregate name)`` to that body name. Groups accumulate across pages.
    """

    window: Window
    where: Filter
    group_by: tuple[str, ...]
    members: list[tuple[int, Query]] = field(default_factory=list)
    aggs: dict[str, Aggregate] = field(default_factory=dict)
    names: dict[tuple[int, str], str] = field(default_factory=dict)
    groups: list[tuple[dict[str, str], dict[str, AggValue]]] = field(default_factory=list)

    def add(self, position: int, query: Query) -> None:
        self.members.append((position, query))
        known = {aggregate: name for name, aggregate in self.aggs.items()}
        for name, aggregate in query.aggregates.items():
            body_name = known.get(aggregate)
            if body_name is None:
                body_name = f"a{len(self.aggs)}"
                self.aggs[body_name] = aggregate
                known[aggregate] = body_name
            self.names[(position, name)] = body_name

    def alone(self) -> list[FusedSearch]:
        """One search per member, to isolate the query that made a fused search fail."""
        singles = []
        for position, query in self.members:
            single = FusedSearch(self.window, self.where, self.group_by)
            single.add(position, query)
            singles.append(single)
        return singles

    def results(self) -> list[tuple[int, list[Group]]]:
        """Each member's groups, with its own aggregate names."""
        merged = self._merged_groups()
        out = []
        for position, query in self.members:
            groups = [
                Group(key, {name: values[self.names[(position, name)]] for name in query.aggregates})
                for key, values in merged
            ]
            out.append((position, groups))
        return out

    def _merged_groups(self) -> list[tuple[dict[str, str], dict[str, AggValue]]]:
        """Groups with equal keys folded into one. A missing value and an empty string are both
        the key "" (as on the embedded store) but two buckets in a composite aggregation."""
        by_key: dict[tuple[str, ...], tuple[dict[str, str], dict[str, AggValue]]] = {}
        for key, values in self.groups:
            slot = tuple(key[name] for name in self.group_by)
            if slot in by_key:
                known = by_key[slot][1]
                values = {
                    name: merge_values(self.aggs[name], known[name], values[name]) for name in self.aggs
                }
            by_key[slot] = (key, values)
        return list(by_key.values())


def fuse(members: Sequence[tuple[int, Query]]) -> list[FusedSearch]:
    """Group queries (with their batch positions) into fused searches, in first-seen order."""
    fused: dict[tuple[Window, Filter, tuple[str, ...]], FusedSearch] = {}
    for position, query in members:
        key = (query.window, query.where, query.group_by)
        if key not in fused:
            fused[key] = FusedSearch(query.window, query.where, query.group_by)
        fused[key].add(position, query)
    return list(fused.values())


# --------------------------------------------------------------------------- compiling


def search_body(
    fused: FusedSearch, catalog: FieldCatalog, time_field: str, page_size: int, after: Json | None = None
) -> Json:
    """The search body for one page of a fused search."""
    filters = [time_range(time_field, fused.window)]
    if not _matches_all(fused.where):
        filters.append(compile_filter(fused.where, catalog))
    aggs = {name: compile_aggregate(aggregate, catalog) for name, aggregate in fused.aggs.items()}
    aggs = {name: body for name, body in aggs.items() if body is not None}
    body: Json = {"size": 0, "query": {"bool": {"filter": filters}}}
    if not fused.group_by:
        body["track_total_hits"] = True
        if aggs:
            body["aggs"] = aggs
        return body
    sources = [
        {f"k{i}": {"terms": {"field": catalog.resolve(name, Use.EXACT), "missing_bucket": True}}}
        for i, name in enumerate(fused.group_by)
    ]
    composite: Json = {"size": page_size, "sources": sources}
    if after is not None:
        composite["after"] = after
    group_agg: Json = {"composite": composite}
    if aggs:
        group_agg["aggs"] = aggs
    body["aggs"] = {GROUPS: group_agg}
    return body


def time_range(time_field: str, window: Window) -> Json:
    """``[start, end)`` as epoch milliseconds. Both ends are rounded up to the millisecond, the
    store's precision, so a document is inside exactly when it is inside the exact window."""
    return {
        "range": {
            time_field: {
                "gte": _epoch_ms(window.start),
                "lt": _epoch_ms(window.end),
                "format": "epoch_millis",
            }
        }
    }


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"window bound {moment.isoformat()} has no time zone; watcher uses UTC datetimes")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -((-micros) // 1000)


def _matches_all(flt: Filter) -> bool:
    return isinstance(flt, And) and not flt.filters


def compile_filter(flt: Filter, catalog: FieldCatalog) -> Json:
    """A filter as a DSL query (used in filter context: no scoring, cacheable)."""
    if isinstance(flt, Eq):
        return {"term": {catalog.resolve(flt.field, Use.EXACT): flt.value}}
    if isinstance(flt, In):
        return {"terms": {catalog.resolve(flt.field, Use.EXACT): list(flt.values)}}
    if isinstance(flt, Range):
        bounds = {op: value for op in ("gte", "gt", "lte", "lt") if (value := getattr(flt, op)) is not None}
        return {"range": {catalog.resolve(flt.field, Use.NUMERIC): bounds}}
    if isinstance(flt, Exists):
        return {"exists": {"field": catalog.resolve(flt.field, Use.PRESENCE)}}
    if isinstance(flt, Not):
        return {"bool": {"must_not": [compile_filter(flt.filter, catalog)]}}
    if isinstance(flt, And):
        if not flt.filters:
            return {"match_all": {}}
        return {"bool": {"filter": [compile_filter(child, catalog) for child in flt.filters]}}
    if not flt.filters:
        return {"match_none": {}}
    return {
        "bool": {
            "should": [compile_filter(child, catalog) for child in flt.filters],
            "minimum_should_match": 1,
        }
    }


def compile_aggregate(aggregate: Aggregate, catalog: FieldCatalog) -> Json | None:
    """An aggregate as a DSL aggregation; ``None`` for ``Count`` (the bucket's doc count)."""
    if isinstance(aggregate, Count):
        return None
    if isinstance(aggregate, CountWhere):
        return {"filter": compile_filter(aggregate.filter, catalog)}
    if isinstance(aggregate, Missing):
        return _missing(aggregate, catalog)
    if isinstance(aggregate, Percentiles):
        name = catalog.resolve(aggregate.field, Use.NUMERIC)
        return {"percentiles": {"field": name, "percents": list(aggregate.qs), "keyed": False}}
    if isinstance(aggregate, Stats):
        return {"stats": {"field": catalog.resolve(aggregate.field, Use.NUMERIC)}}
    if isinstance(aggregate, Cardinality):
        name = catalog.resolve(aggregate.field, Use.EXACT)
        return {"cardinality": {"field": name, "precision_threshold": CARDINALITY_PRECISION}}
    if isinstance(aggregate, Histogram):
        return {
            "range": {"field": catalog.resolve(aggregate.field, Use.NUMERIC), "ranges": _ranges(aggregate)}
        }
    return {"terms": {"field": catalog.resolve(aggregate.field, Use.EXACT), "size": aggregate.size}}


def _missing(aggregate: Missing, catalog: FieldCatalog) -> Json:
    """A ``missing`` aggregation on a field with doc values; on analysed text a filter on absence,
    because the keyword sub-field lacks values longer than its ``ignore_above``."""
    try:
        exact = catalog.resolve(aggregate.field, Use.EXACT)
    except FieldMappingError:
        exact = ""
    if exact == aggregate.field:
        return {"missing": {"field": exact}}
    return {"filter": compile_filter(Not(Exists(aggregate.field)), catalog)}


def _ranges(histogram: Histogram) -> list[Json]:
    """Underflow, the bins between edges, overflow; ``from`` is inclusive, ``to`` exclusive."""
    edges = histogram.edges
    if not edges:
        return [{}]
    inner = [{"from": low, "to": high} for low, high in itertools.pairwise(edges)]
    return [{"to": edges[0]}, *inner, {"from": edges[-1]}]


# --------------------------------------------------------------------------- reading answers


@dataclass(frozen=True)
class Page:
    """What one response adds to a fused search, and the ``after`` key of the next page if any."""

    groups: list[tuple[dict[str, str], dict[str, AggValue]]]
    after: Json | None


def read_page(fused: FusedSearch, response: Mapping[str, Any], page_size: int) -> Page:
    """Parse one search response of ``fused`` (a successful ``_msearch`` item)."""
    aggregations = response.get("aggregations") or {}
    if not fused.group_by:
        total = response.get("hits", {}).get("total", {})
        count = int(total.get("value", 0)) if isinstance(total, Mapping) else int(total)
        return Page([({}, _values(fused, count, aggregations))], None)
    composite = aggregations.get(GROUPS, {})
    buckets = composite.get("buckets", [])
    groups = [
        (
            {name: key_text(bucket["key"].get(f"k{i}")) for i, name in enumerate(fused.group_by)},
            _values(fused, int(bucket.get("doc_count", 0)), bucket),
        )
        for bucket in buckets
    ]
    after = composite.get("after_key")
    more = after is not None and len(buckets) >= page_size
    return Page(groups, after if more else None)


def _values(fused: FusedSearch, count: int, aggs: Mapping[str, Any]) -> dict[str, AggValue]:
    return {
        name: read_aggregate(aggregate, count, aggs.get(name, {})) for name, aggregate in fused.aggs.items()
    }


def read_aggregate(aggregate: Aggregate, count: int, body: Mapping[str, Any]) -> AggValue:
    """One aggregation's answer in the shape ``watcher.query.AggValue`` documents."""
    if isinstance(aggregate, Count):
        return count
    if isinstance(aggregate, CountWhere | Missing):
        return int(body.get("doc_count", 0))
    if isinstance(aggregate, Cardinality):
        return int(body.get("value") or 0)
    if isinstance(aggregate, Percentiles):
        return _percentiles(aggregate, body)
    if isinstance(aggregate, Stats):
        return _stats(body)
    if isinstance(aggregate, Histogram):
        buckets = body.get("buckets", [])
        counts = [int(bucket.get("doc_count", 0)) for bucket in buckets]
        return counts if len(counts) == len(aggregate.edges) + 1 else [0] * (len(aggregate.edges) + 1)
    terms: dict[str, int] = {}
    for bucket in body.get("buckets", []):
        text = bucket.get("key_as_string", key_text(bucket.get("key")))
        terms[str(text)] = int(bucket.get("doc_count", 0))
    return terms


def _percentiles(aggregate: Percentiles, body: Mapping[str, Any]) -> dict[float, float | None]:
    values = body.get("values", [])
    by_key: dict[float, float | None] = {}
    if isinstance(values, list):
        by_key = {float(item["key"]): _number(item.get("value")) for item in values}
    elif isinstance(values, Mapping):
        by_key = {float(key): _number(value) for key, value in values.items()}
    return {q: by_key.get(float(q)) for q in aggregate.qs}


def _stats(body: Mapping[str, Any]) -> dict[str, float | None]:
    count = int(body.get("count") or 0)
    if not count:
        return dict(_EMPTY_STATS)
    out: dict[str, float | None] = {name: _number(body.get(name)) for name in ("avg", "min", "max", "sum")}
    out["count"] = count
    return out


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

"""The backend-neutral query compiled to the Elasticsearch / OpenSearch query DSL, and back.

Queries that share window, ``where`` and ``group_by`` are *fused* into one search body: their
aggregates sit side by side (identical aggregates once), so a tick of many rules costs few
searches. Every body has ``size: 0`` (raw documents never leave the store); filters go in filter
context; the window is a ``range`` on the time field in epoch milliseconds (UTC, no time-zone
guessing); ``group_by`` is a ``composite`` aggregation paged with ``after`` and ``missing_bucket``
(a missing value is the key ""). Field names are resolved through the live mapping (``FieldCatalog``:
analysed text becomes its ``.keyword`` sub-field); ``watcher.store.answers`` reads each answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import MappingProxyType
from typing import Any

from watcher.query import (
    BUCKET,
    Aggregate,
    AggValue,
    Cardinality,
    Count,
    CountWhere,
    Group,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Samples,
    Stats,
    Values,
    Window,
)
from watcher.query_documents import FirstSeen, Latest, Timeline
from watcher.query_filters import And, Eq, Exists, Filter, In, Not, Range
from watcher.store.answers import SAMPLES, aggregate_reader, merge_values
from watcher.store.cells import Cells, Pushed, cells_of, split_where
from watcher.store.dsl_documents import document_aggregation, read_document
from watcher.store.mapping_check import FieldCatalog, FieldMappingError, Use

GROUPS = "g"
BUCKET_SOURCE = "kb"
CARDINALITY_PRECISION = 40000  # the maximum: counts are exact below it, approximate above

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
    buckets: timedelta | None = None
    members: list[tuple[int, Query]] = field(default_factory=list)
    aggs: dict[str, Aggregate] = field(default_factory=dict)
    names: dict[tuple[int, str], str] = field(default_factory=dict)
    groups: list[tuple[dict[str, str], dict[str, AggValue]]] = field(default_factory=list)
    pushed: Pushed = ()
    """A bucketed search's ``where`` conditions read as composite keys (``split_where``)."""
    cells: dict[str, Cells] = field(default_factory=dict)
    """A bucketed search's single-field ``CountWhere`` aggregates counted per document (``cells``)."""
    known: dict[Aggregate, str] = field(default_factory=dict, repr=False)  # ``aggs`` the other way
    readers: tuple[tuple[str, Reader], ...] | None = field(default=None, repr=False, compare=False)
    """Each aggregate's reader (``_reader``), made at the first page read."""

    def add(self, position: int, query: Query) -> None:
        self.members.append((position, query))
        for name, aggregate in query.aggregates.items():
            body_name = self.known.get(aggregate)
            if body_name is None:
                body_name = self.known[aggregate] = f"a{len(self.aggs)}"
                self.aggs[body_name] = aggregate
            self.names[(position, name)] = body_name

    def alone(self) -> list[FusedSearch]:
        """One search per member, to isolate the query that made a fused search fail."""
        singles = []
        for position, query in self.members:
            single = FusedSearch(self.window, self.where, self.group_by, self.buckets)
            single.add(position, query)
            singles.append(single)
        return singles

    def results(self) -> list[tuple[int, list[Group]]]:
        """Each member's groups, with its own aggregate names."""
        merged = self._merged_groups()
        if not self.labels and not merged:  # a search without groups answers one, empty or not
            merged = [({}, group_values(self, 0, {}))]
        out = []
        for position, query in self.members:
            groups = [
                Group(key, {name: values[self.names[(position, name)]] for name in query.aggregates})
                for key, values in merged
            ]
            out.append((position, groups))
        return out

    @property
    def labels(self) -> tuple[str, ...]:
        """The group key's names: ``group_by``, then ``BUCKET`` for a bucketed search."""
        return (*self.group_by, BUCKET) if self.buckets is not None else self.group_by

    def _merged_groups(self) -> list[tuple[dict[str, str], dict[str, AggValue]]]:
        """Groups with equal keys folded into one. A missing value and an empty string are both
        the key "" (as on the embedded store) but two buckets in a composite aggregation."""
        by_key: dict[tuple[str, ...], tuple[dict[str, str], dict[str, AggValue]]] = {}
        for key, values in self.groups:
            slot = tuple(key[name] for name in self.labels)
            if slot in by_key:
                known = by_key[slot][1]
                values = {
                    name: merge_values(self.aggs[name], known[name], values[name]) for name in self.aggs
                }
            by_key[slot] = (key, values)
        return list(by_key.values())


def fuse(members: Sequence[tuple[int, Query]]) -> list[FusedSearch]:
    """Group queries (with their batch positions) into fused searches, in first-seen order."""
    fused: dict[tuple[Window, Filter, tuple[str, ...], timedelta | None], FusedSearch] = {}
    for position, query in members:
        key = (query.window, query.where, query.group_by, query.buckets)
        if key not in fused:
            fused[key] = FusedSearch(query.window, query.where, query.group_by, query.buckets)
        fused[key].add(position, query)
    return list(fused.values())


# --------------------------------------------------------------------------- compiling


def search_body(
    fused: FusedSearch, catalog: FieldCatalog, time_field: str, page_size: int, after: Json | None = None
) -> Json:
    """The search body for one page of a fused search."""
    where = fused.where
    if fused.buckets is not None or all(isinstance(agg, Samples) for agg in fused.aggs.values()):
        fused.pushed, where = split_where(fused.where, fused.aggs.values(), catalog)
    filters = [time_range(time_field, fused.window)]
    if not _matches_all(where):
        filters.append(compile_filter(where, catalog))
    aggs = _pushed_terms(fused.pushed, catalog, _aggregations(fused, catalog, time_field))
    body: Json = {"size": 0, "query": {"bool": {"filter": filters}}}
    if not fused.labels:
        if not fused.pushed:
            body["track_total_hits"] = True
        if aggs:
            body["aggs"] = aggs
        return body
    sources = [
        {f"k{i}": {"terms": {"field": catalog.resolve(name, Use.EXACT), "missing_bucket": True}}}
        for i, name in enumerate(fused.group_by)
    ]
    if fused.buckets is not None:
        sources.append({BUCKET_SOURCE: _bucket_source(time_field, fused.window.start, fused.buckets)})
    composite: Json = {"size": page_size, "sources": sources}
    if after is not None:
        composite["after"] = after
    group_agg: Json = {"composite": composite}
    if aggs:
        group_agg["aggs"] = aggs
    body["aggs"] = {GROUPS: group_agg}
    return body


def _pushed_terms(pushed: Pushed, catalog: FieldCatalog, aggs: Json) -> Json:
    """``aggs`` under one ``terms`` per pushed ``where`` equality (``split_where``), limited to the
    values it names, in key order: only the documents the query asks about come back, not every
    value's (a rule on one of three services read all three's buckets and samples)."""
    for i in reversed(range(len(pushed))):
        name, values = pushed[i]
        allowed = sorted(values)
        terms: Json = {
            "terms": {
                "field": catalog.resolve(name, Use.EXACT),
                "include": allowed,
                "size": len(allowed),
                "order": {"_key": "asc"},
            }
        }
        if aggs:
            terms["aggs"] = aggs
        aggs = {f"w{i}": terms}
    return aggs


def _aggregations(fused: FusedSearch, catalog: FieldCatalog, time_field: str) -> Json:
    """The search's aggregations; in a bucketed search a ``CountWhere`` on one field is counted from
    that field's cells (``watcher.store.cells``) instead of a ``filter`` aggregation."""
    aggs: Json = {}
    for name, aggregate in fused.aggs.items():
        cells = None
        if fused.buckets is not None and isinstance(aggregate, CountWhere):
            cells = cells_of(aggregate.filter, catalog)
        if cells is not None:
            fused.cells[name] = cells
            aggs.update(cells.aggregations(name))
        elif (body := compile_aggregate(aggregate, catalog, time_field)) is not None:
            aggs[name] = body
    return aggs


def _bucket_source(time_field: str, start: datetime, size: timedelta) -> Json:
    """Buckets of ``size`` on the grid through ``start``, keyed by their start in epoch ms."""
    millis = size // timedelta(milliseconds=1)
    phase = epoch_millis(start) % millis
    return {"date_histogram": {"field": time_field, "fixed_interval": f"{millis}ms", "offset": f"{phase}ms"}}


def time_range(time_field: str, window: Window) -> Json:
    """``[start, end)`` as epoch milliseconds. Both ends are rounded up to the millisecond, the
    store's precision, so a document is inside exactly when it is inside the exact window."""
    return {
        "range": {
            time_field: {
                "gte": epoch_millis(window.start),
                "lt": epoch_millis(window.end),
                "format": "epoch_millis",
            }
        }
    }


def epoch_millis(moment: datetime) -> int:
    """A time as the store's epoch milliseconds, rounded up (see ``time_range``)."""
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


def compile_aggregate(
    aggregate: Aggregate, catalog: FieldCatalog, time_field: str = "@timestamp"
) -> Json | None:
    """An aggregate as a DSL aggregation; ``None`` for ``Count`` (the bucket's doc count)."""
    if isinstance(aggregate, Count):
        return None
    if isinstance(aggregate, Timeline | FirstSeen | Latest):
        return document_aggregation(aggregate, catalog, time_field)
    if isinstance(aggregate, Samples):
        return _samples(aggregate, catalog, time_field)
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
    if isinstance(aggregate, Values):
        use = Use.NUMERIC if aggregate.numeric else Use.EXACT
        return {"terms": {"field": catalog.resolve(aggregate.field, use), "size": aggregate.limit + 1}}
    return {"terms": {"field": catalog.resolve(aggregate.field, Use.EXACT), "size": aggregate.size}}


def _samples(aggregate: Samples, catalog: FieldCatalog, time_field: str) -> Json:
    """A ``top_hits`` under a ``filter`` of the documents the samples are drawn from: it rides in
    the group's bucket of the same search, so evidence costs no request of its own."""
    sort = catalog.resolve(aggregate.sort, Use.NUMERIC) if aggregate.sort else time_field
    order = "asc" if aggregate.ascending else "desc"
    source: Json | bool = {"includes": list(aggregate.fields)} if aggregate.fields else True
    hits = {"size": aggregate.size, "sort": [{sort: {"order": order}}], "_source": source}
    if _matches_all(aggregate.filter):  # no filter: an engine may evaluate one over the whole index
        return {"top_hits": hits}
    return {"filter": compile_filter(aggregate.filter, catalog), "aggs": {SAMPLES: {"top_hits": hits}}}


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


# --------------------------------------------------------------------------- reading a bucket


def group_values(fused: FusedSearch, count: int, aggs: Mapping[str, Any]) -> dict[str, AggValue]:
    """The values of ``fused``'s aggregates in one bucket holding ``count`` documents (``aggs``: its
    aggregations), by readers decided at the first bucket read (``watcher.store.dsl_pages``)."""
    readers = fused.readers
    if readers is None:  # the body was compiled (``cells`` decided): read alike every group of it
        readers = fused.readers = tuple(
            (name, _reader(name, aggregate, fused.cells.get(name))) for name, aggregate in fused.aggs.items()
        )
    return {name: read(count, aggs) for name, read in readers}


Reader = Callable[[int, Mapping[str, Any]], AggValue]
"""One aggregate's answer from a bucket: (its document count, its aggregations) -> value."""


def _reader(name: str, aggregate: Aggregate, cells: Cells | None) -> Reader:
    """How ``aggregate`` (body name ``name``) is read from each bucket, decided once per search:
    a tick reads every group of every search, and deciding per value was most of reading them."""
    if cells is not None:
        return partial(cells.count, name=name)
    if isinstance(aggregate, Timeline | FirstSeen | Latest):
        return lambda count, aggs: read_document(aggregate, aggs.get(name, _NOTHING))
    read = aggregate_reader(aggregate)
    return lambda count, aggs: read(aggregate, count, aggs.get(name, _NOTHING))


_NOTHING: Mapping[str, Any] = MappingProxyType({})

"""The document-level aggregates (``Timeline``, ``FirstSeen``, ``Latest``) as search aggregations,
and their answers read back.

Each is a ``terms`` (one field) or ``multi_terms`` (several) aggregation on the values, with the
``min`` / ``max`` of the time field per value, under a ``filter`` on the time the question is
about. What stays in the store:

- ``FirstSeen``: every value of the window (the lookback and the rule's window) is bucketed, a
  ``bucket_selector`` drops those first seen before ``since``, and only the new ones come back.
  The ``terms`` asks for ``limit`` buckets on every shard, so the answer is exact whenever the
  window holds at most ``limit`` values; past it ``sum_other_doc_count`` says some were left out
  and the answer is ``None``. (Ordering the buckets by their first time instead would be wrong
  across shards: a shard that saw a value only recently would report it new.)
- ``Latest``: the one value with the latest time before ``before`` (``max`` descending, exact on
  any number of shards).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from watcher.query import Window
from watcher.query_documents import DocumentAggregate, FirstSeen, Latest, Seen, Timeline, by_first
from watcher.store.answers import key_text
from watcher.store.mapping_check import FieldCatalog, Use
from watcher.store.sql_documents import from_ms

Json = dict[str, Any]
_FAR = datetime(9999, 1, 1, tzinfo=UTC)
_START = datetime(1970, 1, 1, tzinfo=UTC)


def document_aggregation(aggregate: DocumentAggregate, catalog: FieldCatalog, time_field: str) -> Json:
    """The aggregation answering ``aggregate`` (its answer is read by ``read_document``)."""
    from watcher.store.dsl import epoch_millis, time_range  # dsl imports this module

    times = {"first": {"min": {"field": time_field}}, "last": {"max": {"field": time_field}}}
    if isinstance(aggregate, Latest):
        order = [{"last": "desc"}, {"_key": "asc"}]
        values = _values((aggregate.field,), catalog, size=1, order=order)
        values["aggs"] = {"last": times["last"]}
        rows = time_range(time_field, Window(_START, aggregate.before))
        return {"filter": rows, "aggs": {"v": values}}
    if isinstance(aggregate, FirstSeen):
        values = _values(aggregate.fields, catalog, size=aggregate.limit, shard_size=aggregate.limit)
        new = {
            "buckets_path": {"first": "first"},
            "script": f"params.first >= {epoch_millis(aggregate.since)}L",
        }
        values["aggs"] = {**times, "new": {"bucket_selector": new}}
        return {"filter": {"match_all": {}}, "aggs": {"v": values}}
    values = _values(aggregate.fields, catalog, size=aggregate.limit + 1)
    values["aggs"] = times
    since = aggregate.since
    rows = {"match_all": {}} if since is None else time_range(time_field, Window(since, _FAR))
    return {"filter": rows, "aggs": {"v": values}}


def _values(fields: tuple[str, ...], catalog: FieldCatalog, **options: Any) -> Json:
    names = [catalog.resolve(name, Use.EXACT) for name in fields]
    if len(names) == 1:
        return {"terms": {"field": names[0], **options}}
    return {"multi_terms": {"terms": [{"field": name} for name in names], **options}}


def read_document(aggregate: DocumentAggregate, body: Mapping[str, Any]) -> Any:
    """The answer to ``aggregate`` in the shape ``watcher.query`` documents."""
    terms = body.get("v") or {}
    buckets = terms.get("buckets") or []
    if isinstance(aggregate, Latest):
        return _value(buckets[0])[0] if buckets else None
    if isinstance(aggregate, FirstSeen) and int(terms.get("sum_other_doc_count") or 0):
        return None
    if isinstance(aggregate, Timeline) and len(buckets) > aggregate.limit:
        return None
    return by_first(
        Seen(
            _value(bucket),
            from_ms(bucket["first"]["value"]),
            from_ms(bucket["last"]["value"]),
            int(bucket.get("doc_count", 0)),
        )
        for bucket in buckets
    )


def _value(bucket: Mapping[str, Any]) -> tuple[str, ...]:
    key = bucket.get("key")
    if isinstance(key, list):
        return tuple(key_text(part) for part in key)
    return (str(bucket.get("key_as_string", key_text(key))),)

"""The document-level aggregates (``Timeline``, ``FirstSeen``, ``Latest``) in the fused DuckDB
statement (``watcher.store.sql``).

Each is an aggregate over the distinct values of its fields: the inner GROUP BY of the branch of
its (group set, value) counts each value's rows and takes their first or last time, shared with
the terms, cardinality and ``Values`` of other rules on the same field; the outer aggregate keeps
the values the question asks for (those of the rows since a time, those first seen since a time,
the latest before a time) as a list. Only those values come back, never the documents: a
``new_value`` over 30 days of logs returns its few new values, not the month's.

Times come back as epoch milliseconds, the search store's precision, so both stores answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from watcher.query_documents import DocumentAggregate, FirstSeen, Latest, Seen, Timeline, by_first
from watcher.store.fused_rows import Decoder

if TYPE_CHECKING:
    from watcher.store.sql import Builder

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def document_aggregate(b: Builder, groups: tuple[str, ...], scope: str, agg: DocumentAggregate) -> Decoder:
    """Register a document-level aggregate's SQL; return how to read its value back."""
    fields = (agg.field,) if isinstance(agg, Latest) else agg.fields
    columns = [b.text(name) for name in fields]
    value = columns[0] if len(columns) == 1 else f"[{', '.join(columns)}]"
    present = " AND ".join(f"{column} IS NOT NULL" for column in columns)
    part = b.part(groups, value, present)
    if isinstance(agg, Latest):
        rows = f"({scope} AND ts < {b.param(_naive(agg.before))})"
        last = part.inner_column(f"max(CASE WHEN {rows} THEN ts END)", rows)
        index = b.aggregate(part, f"(list(v ORDER BY {last} DESC, v) FILTER (WHERE {last} IS NOT NULL))[1]")
        return lambda aggs: None if aggs[index] is None else str(aggs[index])
    rows = scope
    if isinstance(agg, Timeline) and agg.since is not None:
        rows = f"({scope} AND ts >= {b.param(_naive(agg.since))})"
    count = part.count_column(rows)
    first = part.inner_column(f"min(CASE WHEN {rows} THEN ts END)", rows)
    last = part.inner_column(f"max(CASE WHEN {rows} THEN ts END)", rows)
    keep = f"{count} > 0"
    if isinstance(agg, FirstSeen):
        keep += f" AND {first} >= {b.param(_naive(agg.since))}"
    distinct = b.aggregate(part, f"count_if({count} > 0)")
    pairs = f"list(struct_pack(v := v, c := {count}, f := epoch_ms({first}), l := epoch_ms({last})))"
    within = f"count_if({count} > 0) <= {int(agg.limit)}"
    index = b.aggregate(part, f"CASE WHEN {within} THEN {pairs} FILTER (WHERE {keep}) END")
    several = len(columns) > 1

    def decode(aggs: Sequence[Any]) -> tuple[Seen, ...] | None:
        if int(aggs[distinct] or 0) > agg.limit:
            return None
        return by_first(_seen(item, several) for item in aggs[index] or ())

    return decode


def _seen(item: dict[str, Any], several: bool) -> Seen:
    value = tuple(str(v) for v in item["v"]) if several else (str(item["v"]),)
    return Seen(value, from_ms(item["f"]), from_ms(item["l"]), int(item["c"]))


def from_ms(millis: int | float) -> datetime:
    """A UTC datetime from epoch milliseconds (as both stores give times)."""
    return _EPOCH + timedelta(milliseconds=int(millis))


def _naive(moment: datetime) -> datetime:
    from watcher.store.sql import naive_utc  # sql imports this module (through sql_aggregates)

    return naive_utc(moment)

"""Reading the rows of a fused statement (``watcher.store.sql``) back into one result per query.

The statement returns one row per (part, group key); each row carries the ``part`` id, the part's
``g`` group columns and its ``a<n>`` aggregate columns. Rows of the parts of one ``group_by`` set
are merged by group key, then each query decodes its own aggregates from the merged values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from watcher.query import BUCKET, AggValue, Group, Query, QueryResult

Row = tuple[Any, ...]
Decoder = Callable[[Sequence[Any]], AggValue]
"""Reads one aggregate's value from a group's aggregate values (indexed by ``a<n>``)."""


class PartLayout(Protocol):
    """What reading needs of a branch of the statement: its group columns and aggregate indexes."""

    @property
    def groups(self) -> tuple[str, ...]: ...

    @property
    def outer(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class Planned:
    """A query of the batch and how to read it: its group columns, the group key name each gives
    (``BUCKET`` for a bucketed query's bucket) and one decoder per aggregate."""

    query: Query
    groups: tuple[str, ...]
    labels: tuple[str, ...]
    scope_count: Decoder
    decoders: dict[str, Decoder]


@dataclass(frozen=True)
class RowReader:
    """Splits a fused statement's rows into one ``QueryResult`` per planned query."""

    planned: tuple[Planned, ...]
    parts: tuple[PartLayout, ...]
    aggregate_count: int
    samples: frozenset[int] = frozenset()
    """Aggregates answering row ids: read back as the documents of those rows (the row of part -1)."""

    def results(self, columns: Sequence[str], rows: Sequence[Row]) -> dict[str, QueryResult]:
        """One result per planned query, by query id; a query whose values cannot be read gets an error."""
        groups = self._merge(columns, rows)
        out = {}
        for item in self.planned:
            try:
                out[item.query.id] = self._result(item, groups.get(item.groups, {}))
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                out[item.query.id] = QueryResult(item.query.id, error=f"could not read the result: {exc}")
        return out

    def _merge(
        self, columns: Sequence[str], rows: Sequence[Row]
    ) -> dict[tuple[str, ...], dict[Row, list[Any]]]:
        """group set -> group key -> aggregate values, gathered from every part of that set."""
        where = {name: i for i, name in enumerate(columns)}
        merged: dict[tuple[str, ...], dict[Row, list[Any]]] = {}
        documents: dict[int, str] = {}
        for row in rows:
            if row[where["part"]] < 0:  # the documents of the samples' row ids
                documents = {item["r"]: item["d"] for item in row[where["documents"]] or ()}
                continue
            part = self.parts[row[where["part"]]]
            key = tuple(row[where[g]] for g in part.groups)
            values = merged.setdefault(part.groups, {}).setdefault(key, [None] * self.aggregate_count)
            for index in part.outer.values():
                values[index] = row[where[f"a{index}"]]
        for groups in merged.values():
            for values in groups.values():
                for index in self.samples:
                    values[index] = [documents.get(r) for r in values[index] or ()]
        return merged

    def _result(self, item: Planned, groups: dict[Row, list[Any]]) -> QueryResult:
        found = []
        for key, aggs in groups.items():
            if item.labels and not item.scope_count(aggs):
                continue  # the group exists in the scan, not in this query's window and filter
            labels = dict(zip(item.labels, key, strict=True))
            values = {name: decode(aggs) for name, decode in item.decoders.items()}
            names = (*item.query.group_by, BUCKET) if item.query.buckets else item.query.group_by
            found.append(Group({name: str(labels[name]) for name in names}, values))
        found.sort(key=lambda group: tuple(group.key.values()))
        return QueryResult(item.query.id, tuple(found))

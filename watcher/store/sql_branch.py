"""One branch of the fused DuckDB statement (``watcher.store.sql``): the aggregates of one
``group_by`` set, over the rows or over the distinct values of one field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Branch:
    """One branch of the fused statement: the aggregates of one ``group_by`` set, either over
    the rows (``value`` is None) or over the distinct values of ``value`` -- counted per scope
    in an inner GROUP BY, which is how terms, cardinality and histograms of many rules share
    one hash table instead of one DISTINCT or map aggregate each."""

    id: int
    groups: tuple[str, ...]
    value: str | None = None
    present: str = ""
    counts: dict[str, str] = field(default_factory=dict)
    outer: dict[str, int] = field(default_factory=dict)
    inner: dict[str, str] = field(default_factory=dict)
    scopes: dict[str, None] = field(default_factory=dict)
    """The scopes a branch over the rows aggregates: it groups only the rows of one of them."""
    seen: dict[str, None] = field(default_factory=dict)
    """The scopes whose rows the inner GROUP BY reads without counting them (``last_seen``)."""

    def count_column(self, scope: str) -> str:
        """The inner column counting, per value, the rows of ``scope``."""
        return self.counts.setdefault(scope, f"c{len(self.counts) + len(self.inner)}")

    def inner_column(self, sql: str, scope: str) -> str:
        """An inner aggregate per value over the rows of ``scope`` (the first or last time of a
        value, ``watcher.store.sql_documents``); those rows are read by the inner GROUP BY."""
        self.count_column(scope)
        return self.inner.setdefault(sql, f"c{len(self.counts) + len(self.inner)}")

    def last_seen(self, where: str, end: str, scope: str) -> str:
        """An inner column holding, per value, its latest time among the rows of ``where`` before
        ``end``: one per (where, end), shared by every window ending there, however far back it
        starts (``watcher.store.sql_aggregates``, cardinality)."""
        self.seen[scope] = None
        sql = f"max(CASE WHEN {where} AND ts < {end} THEN ts END)"
        return self.inner.setdefault(sql, f"c{len(self.counts) + len(self.inner)}")

    def render(self, constants: Mapping[str, int]) -> str:
        """The branch; a group column in ``constants`` has that one value for every row it
        counts, so it is selected as it is, not grouped by."""
        groups = [column for column in self.groups if column not in constants]
        keys = [f"{constants[c]} AS {c}" if c in constants else c for c in self.groups]
        select = ", ".join(
            [f"{self.id} AS part", *keys] + [f"{sql} AS a{i}" for sql, i in self.outer.items()]
        )
        source = "scoped"
        if self.value is None and groups and self.scopes:
            # Rows of no scope of this branch are not grouped: a 5-minute rule's branch, or a
            # bucketed one, no longer hashes every row of the hour another rule's window scans.
            source = f"scoped WHERE {' OR '.join(self.scopes)}"
        elif self.value is not None:
            # BIGINT: count_if's HUGEINT made Python read a tick's per-value counts 4x slower.
            counts = [f"count_if({scope})::BIGINT AS {name}" for scope, name in self.counts.items()]
            counts += [f"{sql} AS {name}" for sql, name in self.inner.items()]
            inner = ", ".join([*groups, f"{self.value} AS v", *counts])
            any_scope = " OR ".join(self.counts | self.seen)
            source = f"(SELECT {inner} FROM scoped WHERE {self.present} AND ({any_scope}) GROUP BY ALL)"
        group_by = f" GROUP BY {', '.join(groups)}" if groups else ""
        return f"SELECT {select} FROM {source}{group_by}"

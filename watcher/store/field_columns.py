"""Fields the rules read, kept as columns of ``logs`` so a tick reads them without parsing JSON.

The first batch that reads a field (``status``, ``features.age``) adds a VARCHAR column
``field_<n>`` holding exactly what ``json_extract_string`` returns for the field's JSON pointer,
so reading the column or the document gives the same answer. From then on ingestion fills every
such column of the rows it inserts. Rows stored before hold NULL until a batch reads them: the
store first fills the rows of the time ranges the batch scans that are not filled yet, and a
column is read only over ranges recorded as filled. A document is then parsed once per field
instead of once per tick that covers it (a 1h window ticking every minute parsed it 60 times).

The registry -- pointer, column, filled ranges -- is the table ``field_columns`` of the same file,
changed in the same transactions as the columns, so a crash never leaves a column trusted where it
was not filled. At most ``limit`` fields get a column; the others are read from the documents.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from watcher.store.sql import Span, json_paths, json_pointer, merge_spans

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS field_columns (
    pointer VARCHAR NOT NULL, "column" VARCHAR NOT NULL, filled_from TIMESTAMP NOT NULL, filled_to TIMESTAMP
);
"""
FIELD_COLUMNS = 64
"""Fields kept as columns per store by default; each costs a little ingestion time and space."""
FILL_ROWS = 100_000
"""Rows filled per transaction: bounds the memory of filling a long range."""
_OPEN = datetime.max  # the end of a filled range open towards the future (NULL in the registry)


@dataclass
class FieldColumn:
    """One field kept as a column: the rows whose timestamp is in ``filled`` all hold its value."""

    pointer: str
    column: str
    filled: list[Span]


def uncovered(ranges: Iterable[Span], filled: Sequence[Span]) -> list[Span]:
    """The parts of ``ranges`` outside ``filled`` (sorted, disjoint spans)."""
    out = []
    for start, end in ranges:
        for lo, hi in filled:
            if hi <= start or lo >= end:
                continue
            if lo > start:
                out.append((start, lo))
            start = max(start, hi)
            if start >= end:
                break
        if start < end:
            out.append((start, end))
    return out


def to_fill(ranges: Sequence[Span], filled: Sequence[Span]) -> list[Span]:
    """What to fill so that ``ranges`` are covered: the parts of each range outside ``filled``, each
    read ahead by the range's length up to the next filled span -- so the tick a minute later, its
    range one minute further, finds it filled instead of filling one more minute."""
    spans = []
    for lo, hi in ranges:
        for start, end in uncovered([(lo, hi)], filled):
            stop = min([_plus(end, hi - lo), *(begin for begin, _ in filled if begin >= end)])
            spans.append((start, stop))
    return merge_spans(spans)


class FieldColumns:
    """The registry of field columns of one store, read from the file each time it is used (so
    two stores open on one file agree). Not thread-safe: the store calls it under its write lock,
    which also keeps ingestion from inserting rows while a column is added."""

    def __init__(self, limit: int = FIELD_COLUMNS) -> None:
        self.limit = limit
        self._by_pointer: dict[str, FieldColumn] = {}

    @property
    def columns(self) -> list[FieldColumn]:
        """Every field column, which ingestion fills in each row it inserts."""
        return list(self._by_pointer.values())

    def load(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Read the registry (before ingestion inserts rows, before preparing a batch, and after a
        failed change to forget it)."""
        self._by_pointer = {}
        rows = cur.execute(
            'SELECT pointer, "column", filled_from, filled_to FROM field_columns ORDER BY ALL'
        ).fetchall()
        for pointer, column, lo, hi in rows:
            field = self._by_pointer.setdefault(pointer, FieldColumn(pointer, column, []))
            field.filled.append((lo, hi or _OPEN))

    def prepare(
        self, cur: duckdb.DuckDBPyConnection, fields: Sequence[str], ranges: Sequence[Span]
    ) -> dict[str, str]:
        """The columns to read ``fields`` from over ``ranges``, by field name, after giving new
        fields a column (within the limit) and filling their rows of ``ranges``. A field left out
        is read from the documents: over the limit, or when filling failed (logged)."""
        pointers = {name: json_pointer(name) for name in fields}
        try:
            self.load(cur)
            self._add([p for p in dict.fromkeys(pointers.values()) if p not in self._by_pointer], cur)
            self._fill_missing(
                [self._by_pointer[p] for p in pointers.values() if p in self._by_pointer], ranges, cur
            )
        except duckdb.Error as exc:
            log.warning("field columns not updated, fields are read from the documents: %s", exc)
            _rollback(cur)
            self.load(cur)
        return {
            name: field.column
            for name, pointer in pointers.items()
            if (field := self._by_pointer.get(pointer)) is not None and not uncovered(ranges, field.filled)
        }

    def _add(self, pointers: Sequence[str], cur: duckdb.DuckDBPyConnection) -> None:
        """New columns, filled for every row stored after the newest stored now."""
        pointers = pointers[: max(self.limit - len(self._by_pointer), 0)]
        if not pointers:
            return
        cur.begin()
        newest = cur.execute("SELECT max(ts) FROM logs").fetchone()
        start = datetime.min if newest is None or newest[0] is None else _after(newest[0])
        last = max((int(f.column.removeprefix("field_")) for f in self._by_pointer.values()), default=-1)
        added = []
        for number, pointer in enumerate(pointers, last + 1):
            added.append(FieldColumn(pointer, f"field_{number}", [(start, _OPEN)]))
            cur.execute(f"ALTER TABLE logs ADD COLUMN field_{number} VARCHAR")
            _save(cur, added[-1])
        cur.commit()
        self._by_pointer.update((field.pointer, field) for field in added)

    def _fill_missing(
        self, fields: Sequence[FieldColumn], ranges: Sequence[Span], cur: duckdb.DuckDBPyConnection
    ) -> None:
        """Fill the rows of ``ranges`` each field lacks (``to_fill``); fields lacking the same spans
        are filled together, so each document is parsed once for all of them."""
        lacking: dict[tuple[Span, ...], list[FieldColumn]] = {}
        for field in fields:
            if missing := to_fill(ranges, field.filled):
                lacking.setdefault(tuple(missing), []).append(field)
        for spans, group in lacking.items():
            for lo, hi in spans:
                for start, end in _chunks(cur, lo, hi):
                    _fill(cur, group, start, end)


def _chunks(cur: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[Span]:
    """``[lo, hi)`` cut into spans of about ``FILL_ROWS`` stored rows."""
    row = cur.execute("SELECT count(*) FROM logs WHERE ts >= $1 AND ts < $2", [lo, hi]).fetchone()
    pieces = (int(row[0]) if row else 0) // FILL_ROWS
    if pieces < 2:
        return [(lo, hi)]
    fractions = [i / pieces for i in range(1, pieces)]
    found = cur.execute(
        "SELECT quantile_disc(ts, $3::DOUBLE[]) FROM logs WHERE ts >= $1 AND ts < $2", [lo, hi, fractions]
    ).fetchone()
    cuts = sorted({cut for cut in (found[0] if found else ()) if lo < cut < hi})
    bounds = [lo, *cuts, hi]
    return list(itertools.pairwise(bounds))


def _fill(
    cur: duckdb.DuckDBPyConnection, fields: Sequence[FieldColumn], start: datetime, end: datetime
) -> None:
    """Fill the fields' columns for the rows of ``[start, end)`` and record it, in one transaction."""
    # One json_extract_string of all the paths; DuckDB computes the repeated expression once.
    extract = f"json_extract_string(doc, {json_paths(field.pointer for field in fields)})"
    sets = ", ".join(f"{field.column} = {extract}[{i}]" for i, field in enumerate(fields, 1))
    cur.begin()
    cur.execute(f"UPDATE logs SET {sets} WHERE ts >= $1 AND ts < $2", [start, end])
    filled = [merge_spans([*field.filled, (start, end)]) for field in fields]
    for field, spans in zip(fields, filled, strict=True):
        _save(cur, FieldColumn(field.pointer, field.column, spans))
    cur.commit()
    for field, spans in zip(fields, filled, strict=True):
        field.filled = spans


def _save(cur: duckdb.DuckDBPyConnection, field: FieldColumn) -> None:
    cur.execute("DELETE FROM field_columns WHERE pointer = $1", [field.pointer])
    cur.executemany(
        "INSERT INTO field_columns VALUES ($1, $2, $3, $4)",
        [[field.pointer, field.column, lo, None if hi == _OPEN else hi] for lo, hi in field.filled],
    )


def _after(moment: datetime) -> datetime:
    return _plus(moment, timedelta(microseconds=1))


def _plus(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:
        return datetime.max


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # the failure may have come outside a transaction
        cur.rollback()

"""Fields the rules read, kept as columns of ``logs`` so a tick reads them without parsing JSON.

The first batch that reads a field (``status``, ``features.age``) adds a column ``field_<n>``: a
VARCHAR holding exactly what ``json_extract_string`` returns for the field's JSON pointer when the
batch reads it as text, a DOUBLE holding that text's ``finite_number`` (NULL when it is none) when
the batch reads it as a number -- a field read both ways gets both. Reading the column or the
document gives the same answer, and a number is cast once per row, not once per tick (the cast
was most of a 20-feature drift's time). From then on ingestion fills every
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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

import duckdb

from watcher.store.buckets import merge_spans
from watcher.store.sql import Span, finite_number, json_paths, json_pointer

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS field_columns (
    pointer VARCHAR NOT NULL, "column" VARCHAR NOT NULL, filled_from TIMESTAMP NOT NULL, filled_to TIMESTAMP,
    number BOOLEAN NOT NULL DEFAULT false
);
ALTER TABLE field_columns ADD COLUMN IF NOT EXISTS number BOOLEAN DEFAULT false;
"""
FIELD_COLUMNS = 64
"""Fields kept as columns per store by default; each costs a little ingestion time and space."""
FILL_ROWS = 100_000
"""Rows filled per transaction: bounds the memory of filling a long range."""
_OPEN = datetime.max  # the end of a filled range open towards the future (NULL in the registry)


@dataclass
class FieldColumn:
    """One field kept as a column: the rows whose timestamp is in ``filled`` all hold its value,
    as text or (``number``) as a DOUBLE."""

    pointer: str
    column: str
    filled: list[Span]
    number: bool = False

    def value(self, text: str) -> str:
        """SQL for the column's value from ``text``, the field's ``json_extract_string``."""
        return finite_number(text) if self.number else text


class Columns(NamedTuple):
    """The columns a statement reads fields from, by field name: text and DOUBLE ones."""

    text: dict[str, str]
    numbers: dict[str, str]


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
        self._by_key: dict[tuple[str, bool], FieldColumn] = {}  # by (pointer, number)
        self.filled = False
        """Whether the last ``prepare`` filled rows (it read their documents)."""

    @property
    def columns(self) -> list[FieldColumn]:
        """Every field column, which ingestion fills in each row it inserts."""
        return list(self._by_key.values())

    def load(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Read the registry (before ingestion inserts rows, before preparing a batch, and after a
        failed change to forget it)."""
        self._by_key = {}
        rows = cur.execute(
            'SELECT pointer, number, "column", filled_from, filled_to FROM field_columns ORDER BY ALL'
        ).fetchall()
        for pointer, number, column, lo, hi in rows:
            field = self._by_key.setdefault((pointer, number), FieldColumn(pointer, column, [], number))
            field.filled.append((lo, hi or _OPEN))

    def prepare(
        self,
        cur: duckdb.DuckDBPyConnection,
        fields: Sequence[str],
        ranges: Sequence[Span],
        numbers: Sequence[str] = (),
    ) -> Columns:
        """The columns to read ``fields`` (as text) and ``numbers`` from over ``ranges``, after
        giving new ones a column (within the limit) and filling their rows of ``ranges``. One left
        out is read from the documents: over the limit, or when filling failed (logged)."""
        keys = {(name, False): (json_pointer(name), False) for name in fields}
        keys |= {(name, True): (json_pointer(name), True) for name in numbers}
        self.filled = False
        try:
            self.load(cur)
            self._add([key for key in dict.fromkeys(keys.values()) if key not in self._by_key], cur)
            self._fill_missing(
                [self._by_key[key] for key in keys.values() if key in self._by_key], ranges, cur
            )
        except duckdb.Error as exc:
            log.warning("field columns not updated, fields are read from the documents: %s", exc)
            _rollback(cur)
            self.load(cur)
        found = Columns({}, {})
        for (name, number), key in keys.items():
            field = self._by_key.get(key)
            if field is not None and not uncovered(ranges, field.filled):
                (found.numbers if number else found.text)[name] = field.column
        return found

    def _add(self, keys: Sequence[tuple[str, bool]], cur: duckdb.DuckDBPyConnection) -> None:
        """New columns (by pointer and whether they hold numbers), filled for every row stored
        after the newest stored now."""
        keys = keys[: max(self.limit - len(self._by_key), 0)]
        if not keys:
            return
        cur.begin()
        newest = cur.execute("SELECT max(ts) FROM logs").fetchone()
        start = datetime.min if newest is None or newest[0] is None else _after(newest[0])
        last = max((int(f.column.removeprefix("field_")) for f in self._by_key.values()), default=-1)
        added = []
        for index, (pointer, number) in enumerate(keys, last + 1):
            added.append(FieldColumn(pointer, f"field_{index}", [(start, _OPEN)], number))
            cur.execute(f"ALTER TABLE logs ADD COLUMN field_{index} {'DOUBLE' if number else 'VARCHAR'}")
            _save(cur, added[-1])
        cur.commit()
        self._by_key.update(((field.pointer, field.number), field) for field in added)

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
                    self.filled = True


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
    sets = ", ".join(
        f"{field.column} = {field.value(f'{extract}[{i}]')}" for i, field in enumerate(fields, 1)
    )
    cur.begin()
    cur.execute(f"UPDATE logs SET {sets} WHERE ts >= $1 AND ts < $2", [start, end])
    filled = [merge_spans([*field.filled, (start, end)]) for field in fields]
    for field, spans in zip(fields, filled, strict=True):
        _save(cur, replace(field, filled=spans))
    cur.commit()
    for field, spans in zip(fields, filled, strict=True):
        field.filled = spans


def _save(cur: duckdb.DuckDBPyConnection, field: FieldColumn) -> None:
    cur.execute("DELETE FROM field_columns WHERE pointer = $1 AND number = $2", [field.pointer, field.number])
    cur.executemany(
        'INSERT INTO field_columns (pointer, "column", filled_from, filled_to, number) '
        "VALUES ($1, $2, $3, $4, $5)",
        [
            [field.pointer, field.column, lo, None if hi == _OPEN else hi, field.number]
            for lo, hi in field.filled
        ],
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

"""The embedded log store: a DuckDB file fed from JSON-lines files, answering fused queries.

Layout: ``logs(ts TIMESTAMP, doc VARCHAR, field_<n> VARCHAR ...)`` -- the UTC timestamp read from
the configured time field, the document's JSON text as it was written, and the fields the rules
read kept as columns (``field_columns.py``) -- plus ``ingest_cursors``, the per-file read offsets,
kept in the same file and updated in the same transaction as the rows they account for, so a crash
between the two cannot lose or duplicate lines.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import duckdb

from watcher.config import EmbeddedSource
from watcher.config.sources import TimeFormat
from watcher.query import Query, QueryResult
from watcher.store import allocator
from watcher.store.base import StoreError
from watcher.store.field_columns import FIELD_COLUMNS, FieldColumns
from watcher.store.field_columns import SCHEMA as FIELD_COLUMNS_SCHEMA
from watcher.store.ingest import (
    FileCursor,
    IngestReport,
    LineReader,
    epoch_micros,
    parse_lines,
    read_complete_block,
    resume_cursor,
)
from watcher.store.ingest_ahead import ReadAhead
from watcher.store.ingest_bulk import Classified, drop_classified, insert_rows, store_classified
from watcher.store.ingest_cursors import SCHEMA as CURSORS_SCHEMA
from watcher.store.ingest_cursors import load_cursors, save_cursor
from watcher.store.rejections import RejectionLog
from watcher.store.sql import FusedPlan, compile_batch, naive_utc
from watcher.store.store_file import Config, connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (ts TIMESTAMP NOT NULL, doc VARCHAR NOT NULL);
"""
_T = TypeVar("_T")
READ_CHUNK = 8 * 1024 * 1024
"""Bytes of a file stored and committed at a time by a one-off load (a backtest, ``watcher
ingest``): 518k lines (139 MB) took 3.7 s of CPU and 221 MB of RSS with 8 MB chunks, 5.5 s and
290 MB with 4 MB, 6.8 s and 287 MB with 2 MB -- a small commit rewrites the table's last row group
at each of DuckDB's automatic checkpoints, which also leaves the file half as large again. A chunk
costs several times its size at its peak (its text in Python and in DuckDB, its lines, the insert)."""
LIVE_READ_CHUNK = 1024 * 1024
"""The daemon's chunk (``from_source``): it ingests what was appended since its last tick, so only
a backlog at start meets the limit, and that start peak is the daemon's high-water mark. The bulk
ingest took a 4.9 MB backlog up by 51 MB in 4 MB chunks, by 39 MB in 1 MB chunks (0.17 -> 0.19 s
CPU once)."""
LIVE_ROW_GROUP = 61_440
"""Rows per row group of the daemon's store (``from_source``; DuckDB's default is 122,880). A
checkpoint compresses the row group being filled, rewriting what earlier checkpoints wrote of it,
and its whole uncompressed text is then in memory at once: with DuckDB's default, a 49 MB backlog
(182k lines, 11 field columns) peaked at +94 MB of RSS at the checkpoint after the first group
filled, +54 MB with half as many rows; 80 MB: +170 -> +66 MB. Without field columns, 49 MB: +51
-> +68 MB (the checkpoints fall elsewhere), 80 MB: +133 -> +85 MB. Smaller groups (30,720) did no
better."""
CACHE_KEPT = "16MB"
"""What ``trim_cache`` leaves of DuckDB's cached blocks. DuckDB keeps each block it wrote or read
until its memory limit: the 1,000-rule daemon with 10 hours stored held 162 MB (131 MB with 1),
136 MB trimmed to 8 MB after each tick's ingest, same CPU (``bench_daemon_memory.py --hours
10``). Rows appended since the last checkpoint (up to ``checkpoint_threshold``, 16 MB of WAL)
are in memory too: above that they would be written to the temporary folder at each trim. The
daemon's store (``trimmed``) also trims between a backlog's chunks and after a field column fill:
with 10 hours unread at start, 157 -> 147 MB at its high-water mark, +0.5 s CPU to catch up."""


class EmbeddedStore:
    """A ``LogStore`` over one DuckDB file. Safe to share between threads: each call uses its
    own DuckDB cursor, and writes (ingestion, retention, field columns) are serialised."""

    live_partials = True
    """The daemon's live ticks read it through per-bucket partials (``watcher.process.daemon``)."""
    sketches = True
    """It rounds numbers to a log-spaced sketch (``Values.relative_error``): per-bucket partials
    keep a percentile of too many distinct values that way instead of re-reading its windows."""
    distinct_values = True
    """It lists a field's distinct values without their counts (``Values.distinct``): per-bucket
    partials keep a cardinality's buckets that way, for up to ``DISTINCT_LIMIT`` values each."""

    def __init__(
        self,
        path: Path | str,
        time_field: str = "@timestamp",
        retention: timedelta | None = None,
        read_chunk: int = READ_CHUNK,
        threads: int = 1,
        memory_limit: str = "512MB",
        field_columns: int = FIELD_COLUMNS,
        time_format: TimeFormat = "iso8601",
        rejections: RejectionLog | None = None,
        row_group_size: int | None = None,
        read_ahead: bool = True,
        read_only: bool = False,
        trimmed: bool = False,
    ) -> None:
        self.path = Path(path)
        self.time_field = time_field
        self.time_format: TimeFormat = time_format
        self.rejections = rejections  # warns about skipped lines (the daemon's); None: the caller tells
        self.retention = retention
        self._read_chunk = read_chunk
        self._read_ahead = read_ahead  # a backlog's next chunk classified on a 2nd core (ingest_ahead)
        self._trimmed = trimmed  # the cache trimmed between a backlog's chunks and after fills too
        # Serialises what writes: ingestion, retention, and adding or filling field columns.
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One thread by default: a tick's fused scan is small, and each DuckDB thread keeps its own
        # buffers (about 10 MB of RSS per thread with 1,000 rules).
        # ``read_only``: several processes may read one file at once (a backtest's rules shared among
        # processes, ``watcher.replay_workers``), none while one writes; the file must hold the schema.
        config: Config = {"threads": threads, "memory_limit": memory_limit}
        self._con: duckdb.DuckDBPyConnection | None = connect(self.path, config, row_group_size, read_only)
        self._memory_limit = memory_limit
        self._read_only = read_only
        if not read_only:
            self._con.execute(_SCHEMA + CURSORS_SCHEMA + FIELD_COLUMNS_SCHEMA)
        self._fields = FieldColumns(field_columns)
        self._first: tuple[datetime | None] | None = None  # first_time's answer until rows change

    # ------------------------------------------------------------------ ingestion

    def ingest_files(self, globs: Sequence[str], now: datetime | None = None) -> IngestReport:
        """Read what was appended to the files matching ``globs`` since the last pass.

        With ``now`` and a retention, rows already older than the retention are skipped and
        expired rows are deleted after the pass.
        """
        report = IngestReport()
        with self._write_lock, self._cursor() as cur:
            known = {c.path: c for c in load_cursors(cur)}
            for path in _matching_files(globs):
                report.add(self._ingest_file(cur, path, known, self._not_before(now)))
            for gone in [p for p in known if not os.path.exists(p)]:
                cur.execute("DELETE FROM ingest_cursors WHERE path = ?", [gone])
        self._told(report)
        if now is not None:
            self.apply_retention(now)
        return report

    def file_cursor(self, path: Path | str) -> FileCursor | None:
        """How far ``path`` has been read into this store, or ``None`` when it never was."""
        with self._cursor() as cur:
            known = {c.path: c for c in load_cursors(cur)}
        return known.get(os.path.abspath(path))

    def forget_file(self, path: Path | str) -> None:
        """Drop the read offset of ``path``: the next pass reads it from its first line again."""
        with self._write_lock, self._cursor() as cur:
            cur.execute("DELETE FROM ingest_cursors WHERE path = ?", [os.path.abspath(path)])

    def ingest_lines(self, lines: Iterable[str | bytes], now: datetime | None = None) -> IngestReport:
        """Store JSON lines given directly (tests, the demo, backfills); no cursor is kept."""
        parsed = parse_lines(lines, self.time_field, self._not_before(now), time_format=self.time_format)
        with self._write_lock, self._cursor() as cur:
            report = self._write(cur, lambda: insert_rows(cur, parsed, self._fields.columns))
        self._told(report)
        return report

    def _told(self, report: IngestReport) -> None:
        if self.rejections is not None and report.skipped:
            self.rejections.record(report)

    def _ingest_file(
        self, cur: duckdb.DuckDBPyConnection, path: str, known: dict[str, FileCursor], not_before: int | None
    ) -> IngestReport:
        report = IngestReport(files=1)
        try:
            handle = open(path, "rb")  # noqa: SIM115 -- closed below; the file may vanish mid-glob
        except OSError:
            return IngestReport()
        reader = LineReader(self.time_field, self.time_format, not_before)
        self._fields.load(cur)  # what the blocks are classified for; each transaction checks it
        with handle, ReadAhead(self._cursor(), reader, self._fields.columns) as ahead:
            cursor = resume_cursor(path, os.fstat(handle.fileno()), handle, known)
            block, advanced = read_complete_block(handle, cursor, self._read_chunk)
            current = ahead.now(block, (cursor.path, cursor.line + 1))
            while advanced.offset != cursor.offset:
                if self._read_ahead:  # the next block is classified while this one is stored
                    block, following = read_complete_block(handle, advanced, self._read_chunk)
                    upcoming = ahead.later(block, (advanced.path, advanced.line + 1))
                try:
                    self._write(cur, partial(self._store_chunk, cur, current, advanced, reader, report))
                finally:
                    drop_classified(cur, current)
                if self._read_ahead:
                    current = ahead.taken(upcoming)
                else:
                    block, following = read_complete_block(handle, advanced, self._read_chunk)
                    current = ahead.now(block, (advanced.path, advanced.line + 1))
                cursor, advanced = advanced, following
                if self._trimmed and advanced.offset != cursor.offset:  # a backlog: before the next chunk
                    self._trim(cur, purge=False)  # jemalloc's pages: the next chunk takes them again
            self._write(cur, partial(save_cursor, cur, cursor))
        return report

    def _store_chunk(
        self,
        cur: duckdb.DuckDBPyConnection,
        classified: Classified,
        advanced: FileCursor,
        reader: LineReader,
        report: IngestReport,
    ) -> None:
        """Store a classified chunk (``ingest_bulk.store_classified``) and save the cursor past
        it. The chunk is dropped once stored: a backlog costs two chunks of memory, the one
        stored and the next one classified meanwhile (``ingest_ahead``). (Several chunks per
        transaction took no less CPU, but 100 MB more RSS and a file half as large again.)"""
        report.add(store_classified(cur, classified, reader, self._fields.columns))
        save_cursor(cur, advanced)

    def _write(self, cur: duckdb.DuckDBPyConnection, store: Callable[[], _T]) -> _T:
        """Run ``store`` (given the field columns loaded) in one transaction: rows and the file
        cursor that accounts for them."""
        cur.begin()
        try:
            self._fields.load(cur)  # the columns of this transaction's view of the table
            done = store()
            cur.commit()
        except BaseException:
            cur.rollback()
            raise
        self._first = None
        return done

    def _not_before(self, now: datetime | None) -> int | None:
        if now is None or self.retention is None:
            return None
        return epoch_micros(now - self.retention)

    def apply_retention(self, now: datetime) -> int:
        """Delete rows older than ``now - retention``; return how many. No retention: no-op."""
        if self.retention is None:
            return 0
        with self._write_lock, self._cursor() as cur:
            row = cur.execute("DELETE FROM logs WHERE ts < ?", [naive_utc(now - self.retention)]).fetchone()
        self._first = None
        return int(row[0]) if row else 0

    def keep_columns(self, queries: Sequence[Query]) -> None:
        """Give the fields ``queries`` read a column before a backlog is ingested: ingestion then
        fills them as it inserts the rows, instead of the first tick reading them filling every
        row with an UPDATE (a backtest of 3 days: 2.4 s). The columns hold what they would hold
        either way; only when they are filled changes."""
        plan = compile_batch(queries, self.time_field)
        with self._write_lock, self._cursor() as cur:
            self._fields.prepare(cur, plan.fields, [], plan.numbers)

    # ------------------------------------------------------------------ queries

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        """Answer all queries with one fused scan. Queries the store cannot answer get their
        reason without running; if the fused statement fails, the rest are answered one by one
        so a single bad query fails alone."""
        plan = compile_batch(queries, self.time_field)
        try:
            answered = self._answer(plan)
        except duckdb.Error:
            answered = {r.query_id: r for r in self.evaluate_unfused([p.query for p in plan.planned])}
        return [_pick(answered, plan, query) for query in queries]

    def evaluate_unfused(self, queries: Sequence[Query]) -> list[QueryResult]:
        """One statement per query: the baseline the fused scan is measured and tested against."""
        results = []
        for query in queries:
            plan = compile_batch([query], self.time_field)
            try:
                answered = self._answer(plan)
            except duckdb.Error as exc:
                answered = {query.id: QueryResult(query.id, error=f"DuckDB: {exc}")}
            results.append(_pick(answered, plan, query))
        return results

    def _answer(self, plan: FusedPlan) -> dict[str, QueryResult]:
        if not plan.planned:
            return {}
        with self._write_lock, self._cursor() as cur:
            columns = self._fields.prepare(cur, plan.fields, plan.ranges, plan.numbers)
            if self._trimmed and self._fields.filled:  # before the statement: the blocks the fill read
                self._trim(cur)
        with self._cursor() as cur:
            rows = cur.execute(plan.sql(columns.text, columns.numbers), plan.params).fetchall()
            return plan.results([column[0] for column in cur.description], rows)

    # ------------------------------------------------------------------ inspection

    def trim_cache(self) -> None:
        """Drop DuckDB's cached blocks beyond ``CACHE_KEPT`` (read from the file again when
        needed) by lowering the memory limit for a moment, and hand the freed pages back to the
        OS. A block in use stays, and the limit is then not lowered: nothing fails."""
        with self._write_lock, self._cursor() as cur:
            self._trim(cur)

    def _trim(self, cur: duckdb.DuckDBPyConnection, purge: bool = True, checkpoint: bool = False) -> None:
        """``trim_cache`` on ``cur``, whose caller holds the write lock; with ``checkpoint``, the
        WAL is checkpointed under the lowered limit too (``close``)."""
        try:
            cur.execute(f"SET memory_limit = '{CACHE_KEPT}'")
            if checkpoint:
                cur.execute("CHECKPOINT")
        except duckdb.Error:
            pass  # blocks in use (trimmed at a later call), or another transaction open (close checkpoints)
        finally:
            cur.execute(f"SET memory_limit = '{self._memory_limit}'")
        if purge:
            allocator.purge()

    def row_count(self) -> int:
        with self._cursor() as cur:
            row = cur.execute("SELECT count(*) FROM logs").fetchone()
        return int(row[0]) if row else 0

    def first_time(self) -> datetime | None:
        """The oldest stored timestamp (``None``: the store is empty): where its data coverage
        starts (``watcher.store.coverage``). Kept until ingestion or retention changes the rows."""
        if self._first is None:
            found = self.time_range()
            self._first = (None if found is None else found[0],)
        return self._first[0]

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The oldest and newest stored timestamps, or ``None`` when the store is empty."""
        with self._cursor() as cur:
            row = cur.execute("SELECT min(ts), max(ts) FROM logs").fetchone()
        if row is None or row[0] is None:
            return None
        return row[0].replace(tzinfo=UTC), row[1].replace(tzinfo=UTC)

    def close(self) -> None:
        """Checkpoint the WAL under ``CACHE_KEPT`` of memory, then close. DuckDB's own checkpoint
        at close runs under the full memory limit and compresses the rows appended since the last
        one (up to 16 MB of WAL) all at once: the 1,000-rule daemon with 10 hours stored passed 200
        MB of RSS while it stopped, above its 147 MB high-water mark while running. Under 16 MB the
        checkpoint takes +2 MB instead of +50 MB (``bench_daemon_memory.py`` prints both peaks)."""
        if self._con is None:
            return
        if not self._read_only:
            with self._write_lock, self._cursor() as cur:
                self._trim(cur, checkpoint=True)
        self._con.close()
        self._con = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"embedded store {self.path} is closed")
        return self._con.cursor()


def from_source(source: EmbeddedSource) -> EmbeddedStore:
    """The store described by an ``embedded`` source of ``watcher.yaml``."""
    return EmbeddedStore(
        source.path,
        source.time_field,
        source.retention,
        threads=source.threads,
        memory_limit=source.memory_limit,
        time_format=source.time_format,
        rejections=RejectionLog(),
        read_chunk=LIVE_READ_CHUNK,
        row_group_size=LIVE_ROW_GROUP,
        read_ahead=False,  # its start backlog peak is the daemon's high-water mark: one chunk at a time
        trimmed=True,  # and so is its first query's: the cache trimmed between chunks and after fills
    )


def _pick(answered: dict[str, QueryResult], plan: FusedPlan, query: Query) -> QueryResult:
    if query.id in plan.errors:
        return QueryResult(query.id, error=plan.errors[query.id])
    return answered.get(query.id) or QueryResult(query.id, error="no result for this query")


def _matching_files(globs: Sequence[str]) -> list[str]:
    found = {os.path.abspath(p) for pattern in globs for p in glob.glob(pattern, recursive=True)}
    return sorted(p for p in found if os.path.isfile(p))

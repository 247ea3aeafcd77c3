"""Classifying a file's next block while the current one is inserted and committed.

A backlog (a backtest's 518k lines, the daemon's start after a pause) spends about as long in
DuckDB classifying a block (``ingest_bulk.classify_block``: splitting it into lines, checking
their JSON, reading times and field values, sorting) as inserting and committing the block before
it. DuckDB runs a query without holding the GIL, so the next block is classified on a worker
thread with its own cursor while the caller's thread stores the current one: two cores instead of
one. Each block's transaction (its rows and the file cursor past them) stays on the caller's
thread, in file order, as before; at most two blocks are in memory. A single block (a live tick's
new lines) is classified on the caller's thread and starts no worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

import duckdb

from watcher.store.field_columns import FieldColumn
from watcher.store.ingest import LineReader
from watcher.store.ingest_bulk import Classified, classify_block, drop_classified


class ReadAhead:
    """Classifies blocks of one file for its reader, on ``cursor`` (which it closes): the first
    one now, the next ones on a worker thread. Leaving the ``with`` block waits for the worker
    and frees what it classified that was not stored."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, reader: LineReader, fields: Sequence[FieldColumn]):
        self._cursor = cursor
        self._reader = reader
        self._fields = tuple(fields)
        self._worker: ThreadPoolExecutor | None = None
        self._pending: list[Future[Classified]] = []

    def now(self, block: bytes, where: tuple[str | None, int]) -> Classified:
        """``block`` classified on this thread."""
        return classify_block(self._cursor, block, self._reader, where, self._fields)

    def later(self, block: bytes, where: tuple[str | None, int]) -> Future[Classified]:
        """``block`` being classified on the worker thread (an empty block: done at once)."""
        if not block:
            done: Future[Classified] = Future()
            done.set_result(Classified(where))
            return done
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="ingest-ahead")
        future = self._worker.submit(classify_block, self._cursor, block, self._reader, where, self._fields)
        self._pending.append(future)
        return future

    def taken(self, future: Future[Classified]) -> Classified:
        """The block ``later`` classified, now the caller's to store and drop."""
        if future in self._pending:
            self._pending.remove(future)
        return future.result()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            for future in self._pending:
                with contextlib.suppress(Exception):  # the error that left the block is the one to see
                    drop_classified(self._cursor, future.result())
        finally:
            if self._worker is not None:
                self._worker.shutdown()
            self._cursor.close()

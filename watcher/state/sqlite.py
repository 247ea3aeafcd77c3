"""The SQLite backend: one file, the default (one node, the demo, backtests).

Durability settings, and why:

- WAL journal: the CLI reads (and edits silences) while the daemon writes; readers never block
  the writer nor each other.
- ``synchronous=FULL``: with WAL, NORMAL may drop the last commits on power loss, and losing an
  outbox row means a lost message. A tick that enqueues a notification is committed FULL, and so
  are silences, acks and migrations. Two kinds of commits are NORMAL (``durable=False``), as no
  process crash can lose them (the WAL is written before COMMIT returns), only power loss:
  - Delivery bookkeeping (claim, delivered, failed): power loss can drop the latest marks (until
    the next FULL commit syncs them), which re-sends those notifications -- at least once, never
    lost. Skipping that fsync shrinks the window in which a crash between a send and its
    "delivered" mark re-sends a message from ~4 ms to well under 1 ms on a quiet host. The level
    is set only when it changes (``_sync_level``): a transaction sets the level its COMMIT needs
    and the connection keeps it, so a worker's claims and marks do not set and reset it around
    each one, and a durable commit after them sets FULL again.
  - A tick that enqueues no notification (most ticks: an open incident's new sample, checkpoints,
    an incident joining its routing group before ``group_wait``). Power loss drops only the newest
    commits, whole: WAL frames are checksummed in a chain and recovery stops at the first bad one,
    and a FULL commit (a notifying tick, a silence, an ack) or a checkpoint (every 1 MB of WAL, and
    the daemon's ``truncate_journal`` every 30 s) syncs every commit before it. The state is then
    as if the daemon had stopped before those ticks, which a crash may do anyway: their checkpoints
    went with them, so catch-up evaluates those windows again (up to ``catch_up`` back) to the same
    transitions, and those to the same group rows (a group's key, start and first flush come from
    the route, the labels and the transition's evaluation time, not from the clock), which flush
    later as they would have; a flush that sent nothing is made again from the stored group.
    Nothing was told from the lost ticks: only a FULL commit enqueues, and it would have synced them
    first. The fsync was ~0.4 ms of CPU of a ~2 ms commit (``bench_search_tick.py``, 7 open
    incidents), paid at every tick.
- ``busy_timeout``: two processes wait for each other's write lock instead of failing, and writes
  start with ``BEGIN IMMEDIATE`` so a lock upgrade can never deadlock.
- ``journal_size_limit`` and ``truncate_journal`` (the daemon calls it every 30s): the WAL gives its
  space back, so after a full disk the journal cannot refill it and keep writes failing.
- The schema version is ``PRAGMA user_version``.
- ``scratch``: a throw-away file (a backtest's state, deleted when it ends) is never flushed to
  disk (``synchronous=OFF``): an fsync per simulated tick was most of a backtest's wall time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from watcher.state.base import Backend, Rows
from watcher.state.dialect import SQLITE

JOURNAL_SIZE_LIMIT = 1024 * 1024
"""The WAL is checkpointed once it holds this much (SQLite's default, 1,000 pages, is 4 MB: more
than a small disk has) and cut back to it when it restarts, so it stays near 1 MB."""


class SQLiteBackend(Backend):
    dialect = SQLITE

    def __init__(
        self, path: Path, *, busy_timeout: timedelta = timedelta(seconds=5), scratch: bool = False
    ) -> None:
        self.path = path
        self._synchronous = "OFF" if scratch else "FULL"
        self.name = str(path)
        self._busy_timeout_ms = int(busy_timeout.total_seconds() * 1000)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            path, timeout=busy_timeout.total_seconds(), isolation_level=None, check_same_thread=False
        )
        try:
            self.db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._level = self._synchronous
            self.db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            self.db.execute(f"PRAGMA wal_autocheckpoint = {JOURNAL_SIZE_LIMIT // 4096}")
            self.db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            self.db.close()
            raise

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Rows:
        return self.db.execute(statement, args)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(statement, rows)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """One immediate transaction; ``durable=False`` commits it without an fsync."""
        self._sync_level(self._synchronous if durable or self._synchronous != "FULL" else "NORMAL")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")  # a full disk fails here: roll back, never stay inside
        except BaseException:
            rollback(self.db)
            raise

    def _sync_level(self, level: str) -> None:
        """Set ``synchronous`` for the next commit, only when it changes: the level stays as the
        last transaction left it (every write is in a transaction, which sets its own). A delivery
        worker's claims and marks run back to back at NORMAL, so each mark is its own three
        statements, not five: every statement lets the tick's thread take the GIL, and on a loaded
        host each handoff back costs the crash-duplicate window milliseconds."""
        if level != self._level:
            self.db.execute(f"PRAGMA synchronous = {level}")
            self._level = level

    def lock_schema(self) -> None:
        """``BEGIN IMMEDIATE`` already holds the file's only write lock."""

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version = {int(version)}")

    def version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def truncate_journal(self) -> bool:
        """Copy the write-ahead log into the file and cut it to zero bytes (``wal_checkpoint(TRUNCATE)``),
        so a WAL grown while the disk was full gives its space back. Never waits: False when a
        reader or writer (the CLI) is in the way, to try again later."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return not busy

    def close(self) -> None:
        self.db.close()


def rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is open. SQLite rolls back by itself on some errors (disk full,
    I/O); a second ROLLBACK would fail and hide the original error."""
    if db.in_transaction:
        db.execute("ROLLBACK")

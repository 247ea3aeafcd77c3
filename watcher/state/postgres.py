"""The PostgreSQL backend (``state: {url: postgresql://user:pass@host:5432/db}``), through psycopg 3.

Same tables and migrations as SQLite (``PostgresDialect`` rewrites the types); the differences:

- One connection in autocommit mode; ``transaction`` is ``BEGIN ... COMMIT`` (psycopg's
  ``Connection.transaction``). Delivery bookkeeping (``durable=False``) commits with
  ``SET LOCAL synchronous_commit = off``, PostgreSQL's counterpart of SQLite's NORMAL: a crash of
  the server may lose the last marks (a re-send). So do ticks that enqueue no notification: the
  server's WAL is one sequence and a synchronous commit flushes it up to its own record, so a
  crash loses only the newest asynchronous commits, whole (within ``3 x wal_writer_delay``), and
  a notifying tick -- of any replica, which may have read them -- makes them durable first. The
  argument is SQLite's (``watcher.state.sqlite``): the state is as if those ticks never ran, and
  catch-up evaluates them again; nothing was told from them.
- An outbox claim locks its row with ``FOR UPDATE SKIP LOCKED``, so drainers in several
  processes never wait for one another nor take the same row.
- The schema version is the one row of ``watcher_schema``; migrating holds a transaction-scoped
  advisory lock, so two processes opening a new database migrate it once.
- One daemon per database without ``ha:`` (replicas share it by leases instead,
  ``watcher.state.leases``): a session advisory lock on a connection of its own
  (``PostgresDaemonLock``), released by the server when the process or its connection dies.
- A connection the server dropped (a restart, a network cut) is opened again at the next call,
  outside a transaction; the call during the cut fails like a failed SQLite write.
- Messages name the database by its URL without the password (``watcher.state.url``).

psycopg is imported here only, so a daemon on SQLite never loads it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg

from watcher.incidents.lock import StateLock
from watcher.incidents.schema import StateStoreError
from watcher.state.base import Backend, Rows
from watcher.state.dialect import POSTGRES
from watcher.state.url import redact, scrub

_SCHEMA_LOCK = 0x7761746368657201  # "watcher" + 1: migrations
_DAEMON_LOCK = 0x7761746368657202  # "watcher" + 2: one daemon per database (without ha:)
_DAEMON_NAME = "watcher daemon"


class PostgresBackend(Backend):
    dialect = POSTGRES
    shared = True

    def __init__(self, url: str, *, connect_timeout: timedelta = timedelta(seconds=10)) -> None:
        self.url = url
        self.name = redact(url)
        self._timeout = max(1, int(connect_timeout.total_seconds()))
        self._conn = connect(url, self._timeout)

    def connection(self) -> psycopg.Connection[Any]:
        """The live connection: a dropped one is replaced, unless a transaction was open on it."""
        if self._conn.closed or self._conn.broken:
            if self._conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                raise psycopg.OperationalError("the connection to the state database was lost")
            self._conn = connect(self.url, self._timeout)
        return self._conn

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Rows:
        return self.connection().execute(self.dialect.sql(statement), tuple(args))

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(row) for row in rows]
        if batch:
            with self.connection().cursor() as cursor:
                cursor.executemany(self.dialect.sql(statement), batch)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        with self.connection().transaction():
            if not durable:
                self._conn.execute("SET LOCAL synchronous_commit = off")
            yield

    def lock_schema(self) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        self._conn.execute("CREATE TABLE IF NOT EXISTS watcher_schema (version INTEGER NOT NULL)")

    def schema_version(self) -> int:
        row = self._conn.execute("SELECT max(version) FROM watcher_schema").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def set_schema_version(self, version: int) -> None:
        self._conn.execute("DELETE FROM watcher_schema")
        self._conn.execute("INSERT INTO watcher_schema (version) VALUES (%s)", (version,))

    def after_copy(self) -> None:
        self.execute(
            "SELECT setval(pg_get_serial_sequence('outbox', 'seq'), coalesce(max(seq), 0) + 1, false) "
            "FROM outbox"
        )

    def close(self) -> None:
        self._conn.close()


def connect(url: str, timeout: int, name: str = "watcher") -> psycopg.Connection[Any]:
    """A connection in autocommit mode; any failure is a ``StateStoreError`` without the password."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=timeout, application_name=name)
    except (psycopg.Error, ValueError) as exc:
        reason = scrub(str(exc).strip(), url).replace("\n", " ")
        raise StateStoreError(f"{redact(url)}: cannot use the state database ({reason})") from None


class PostgresDaemonLock(StateLock):
    """One daemon per database: a session advisory lock held on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``StateStoreError`` naming the daemon that holds it."""
        me = f"{_DAEMON_NAME} (pid {os.getpid()} on {socket.gethostname()})"
        conn = connect(self.url, 10, me[:63])
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_DAEMON_LOCK,)).fetchone()
        if row is None or not row[0]:
            holder = conn.execute(
                "SELECT application_name FROM pg_locks JOIN pg_stat_activity USING (pid) "
                "WHERE locktype = 'advisory' AND granted AND objid = %s AND classid = %s",
                (_DAEMON_LOCK & 0xFFFFFFFF, _DAEMON_LOCK >> 32),
            ).fetchone()
            conn.close()
            who = holder[0].removeprefix(_DAEMON_NAME).strip() if holder else "(unknown)"
            raise StateStoreError(f"{redact(self.url)}: another watcher daemon {who} uses this database")
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the server drops a session's advisory locks with it
            self._conn = None

"""The interface every state backend implements, and ``Db``, what the stages write through.

A backend is one connection to one database, used under ``StateStore``'s lock (one thread at a
time). It runs statements written SQLite-style (its ``Dialect`` translates them), opens
transactions (``durable=False``: a commit that may skip the disk flush, for delivery
bookkeeping), keeps the schema version and says whether its tables hold anything (``watcher
state migrate`` refuses a non-empty target). What a backend does not do: decide anything. The
SQL of incidents, checkpoints, the outbox, groups and silences is shared by all backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from watcher.state.dialect import Dialect

STATE_TABLES = (
    "incidents",
    "checkpoints",
    "outbox",
    "outbox_incidents",
    "thread_refs",
    "silences",
    "dispatch_groups",
    "dispatch_members",
    "receiver_circuits",
    "episodes",
    "acks",
)
"""Every table of the state, parents before the tables that reference them."""


class Rows(Protocol):
    """A statement's result: a DB-API cursor of either driver."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """The connection as a stage sees it (``StateStore.reading()`` / ``writing()`` / a tick's
    ``writes``): statements with ``?`` placeholders, run on whatever backend holds the state."""

    dialect: Dialect

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Backend(ABC):
    """One database holding watcher's state (see the module's docstring)."""

    dialect: Dialect
    name: str
    """How messages name the state: a file path, or a URL without its password."""
    shared = False
    """Whether several daemons (replicas) may run on this state at once (PostgreSQL). A state
    that is not shared belongs to the one daemon holding its lock (a SQLite file)."""

    @abstractmethod
    def execute(self, statement: str, args: Sequence[Any] = ()) -> Rows: ...

    @abstractmethod
    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def transaction(self, durable: bool = True) -> AbstractContextManager[None]:
        """Everything run inside commits together or not at all; writers are serialised
        (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks)."""

    @abstractmethod
    def lock_schema(self) -> None:
        """Inside a transaction: wait until no other process is migrating, so a new database is
        migrated exactly once when two processes open it at the same time."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def set_schema_version(self, version: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def version(self) -> int | None:
        """A number that changes when another connection commits to the database (SQLite's
        ``data_version``), so what this connection read and wrote since is all there is; None
        when the backend cannot tell (every read then reads)."""
        return None

    def truncate_journal(self) -> bool:
        """Give back the space a write-ahead journal took (SQLite's WAL); False to try later."""
        return True

    def after_copy(self) -> None:  # noqa: B027 (a hook: nothing to do for most backends)
        """After rows were copied in with their own ids: let new rows continue after them."""

    def empty(self) -> bool:
        """Whether no table of the state holds a row."""
        return all(self.execute(f"SELECT 1 FROM {name} LIMIT 1").fetchone() is None for name in STATE_TABLES)

    def rows(self, table: str) -> tuple[list[str], Iterator[Sequence[Any]]]:
        """A table's column names and its rows (``watcher state migrate``)."""
        cursor: Any = self.execute(f"SELECT * FROM {table}")
        return [column[0] for column in cursor.description], iter(cursor.fetchall())

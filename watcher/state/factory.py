"""Opening the state the config names: the one place that picks a backend.

The daemon, the CLI (``watcher incidents | silence``) and ``watcher state migrate`` open the state
through here, so every command works on a PostgreSQL state as on a file. The PostgreSQL module
(and psycopg) is imported only when a URL asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.incidents.lock import DaemonLock, StateLock
from watcher.incidents.state import StateStore
from watcher.state.base import Backend
from watcher.state.sqlite import SQLiteBackend

if TYPE_CHECKING:
    from watcher.config import StateConfig


def open_backend(config: StateConfig) -> Backend:
    """The backend of ``config``, connected; ``StateStoreError`` (without secrets) if it cannot be."""
    if config.url is None:
        return SQLiteBackend(config.path)
    from watcher.state.postgres import PostgresBackend

    return PostgresBackend(config.url)


def open_state(config: StateConfig) -> StateStore:
    """The state of ``config``, migrated to the current schema."""
    if config.url is None:
        return StateStore(config.path)
    return StateStore(open_backend(config))


def daemon_lock(config: StateConfig, *, shared: bool = False) -> StateLock:
    """The lock a daemon holds on its state while it runs (not yet taken). ``shared`` (``ha:``
    on a PostgreSQL state): replicas share it, so there is none; leases decide who evaluates what
    (``watcher.process.partitions``)."""
    if shared and config.url is not None:
        return SharedState()
    if config.url is None:
        config.path.parent.mkdir(parents=True, exist_ok=True)
        return DaemonLock(config.path)
    from watcher.state.postgres import PostgresDaemonLock

    return PostgresDaemonLock(config.url)


class SharedState(StateLock):
    """No lock: several replicas run on the state at once (``ha:``)."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

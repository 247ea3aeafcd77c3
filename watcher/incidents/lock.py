"""One daemon per state file: an exclusive ``flock`` on ``<state file>.lock``.

Two daemons on one file would evaluate every rule twice. Holding the lock also makes the
daemon's start-up safe to release every notification left claimed by a crashed predecessor
(``StateStore.release_claims``): no other drainer can be running (on a shared PostgreSQL state
only claims whose lease ran out are released). The OS drops the lock when the
process dies, even by SIGKILL, so a crash never leaves a stale lock behind. The CLI commands
(``silence``, ``incidents``) do not take it: they only read or touch their own rows.
"""

from __future__ import annotations

import fcntl
import os
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

from watcher.incidents.schema import StateStoreError


class StateLock(ABC):
    """One daemon per state, whatever holds it (a file here, PostgreSQL in
    ``watcher.state.postgres``): taken at start, released at stop or when the process dies."""

    @abstractmethod
    def acquire(self) -> None:
        """Take the lock or raise ``StateStoreError`` naming the daemon that holds it."""

    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


class DaemonLock(StateLock):
    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``StateStoreError`` naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateStoreError(
                f"{self.path.with_suffix('')}: another watcher daemon (pid {holder}) uses this state file"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

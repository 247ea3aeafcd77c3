"""The SQL of high availability: replicas' heartbeats and the partitions' leases, for both backends.

Two tables (migration 5): ``replicas`` (one row per ``watcher run``, its ``last_seen`` refreshed
every heartbeat) and ``partitions`` (one row per partition: ``owner``, ``epoch``, ``expires_at``).
What the statements guarantee, whatever the timing:

- a partition has at most one owner: ``take`` is a conditional UPDATE (free or expired only);
- ``epoch`` grows by one at every change of hands, so the epoch a replica read when it took a
  partition names its tenure;
- ``fence`` runs inside a tick's transaction and locks the tick's partitions (PostgreSQL
  ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already holds the only write lock) before checking
  owner and epoch: a takeover waits for the tick to commit, and a tick whose lease moved on
  writes nothing. Rows are locked in partition order, by ``fence`` and ``renew`` alike, so two
  transactions never wait for each other in a cycle.

Times are the replicas' clocks (integer microseconds); replicas should run NTP, with an offset
far below ``lease - heartbeat``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from watcher.incidents.encoding import from_micros, micros
from watcher.state.base import Db


class LeaseLostError(Exception):
    """A write was refused: the lease of a partition it belongs to moved on (fencing)."""

    def __init__(self, lost: Sequence[int]) -> None:
        super().__init__(f"lease lost on partition(s) {', '.join(map(str, lost))}: the write was refused")
        self.lost = tuple(lost)


class PartitionsMismatchError(Exception):
    """The state's ``partitions`` table holds another count than this replica's ``ha.partitions``:
    rewriting it under running replicas would hash rules to other partitions than theirs (a rule
    evaluated twice, or never), so the replica refuses to start."""

    def __init__(self, configured: int, stored: int) -> None:
        super().__init__(
            f"ha.partitions is {configured} but the state's other replicas use {stored}: give every "
            f"replica the same ha.partitions (to change it, stop all replicas first, then start them "
            f"with the new value)"
        )
        self.configured, self.stored = configured, stored


@dataclass(frozen=True)
class ReplicaRow:
    id: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Lease:
    number: int
    owner: str | None
    epoch: int
    expires_at: datetime


def ensure_partitions(db: Db, count: int, now: datetime) -> None:
    """Partitions ``0 .. count - 1`` exist. A table of another size is rebuilt only when no replica
    holds a lease in it (all stopped); else ``PartitionsMismatchError``."""
    rows = db.execute(
        f"SELECT number, owner, expires_at FROM partitions ORDER BY number{db.dialect.lock_rows}"
    ).fetchall()
    if rows and len(rows) != count:
        if any(owner is not None and int(until) > micros(now) for _, owner, until in rows):
            raise PartitionsMismatchError(count, len(rows))
        db.execute("DELETE FROM partitions")
    db.executemany(
        "INSERT INTO partitions (number) VALUES (?) ON CONFLICT (number) DO NOTHING",
        [(number,) for number in range(count)],
    )


def heartbeat(db: Db, replica: ReplicaRow, now: datetime) -> None:
    db.execute(
        "INSERT INTO replicas (id, host, pid, started_at, last_seen) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
        (replica.id, replica.host, replica.pid, micros(replica.started_at), micros(now)),
    )


def replicas(db: Db) -> list[ReplicaRow]:
    """Every replica that heartbeat, by id."""
    rows = db.execute("SELECT id, host, pid, started_at, last_seen FROM replicas ORDER BY id").fetchall()
    return [
        ReplicaRow(id, host, int(pid), from_micros(start), from_micros(seen))
        for id, host, pid, start, seen in rows
    ]


def leases(db: Db) -> list[Lease]:
    rows = db.execute("SELECT number, owner, epoch, expires_at FROM partitions ORDER BY number").fetchall()
    return [Lease(int(number), owner, int(epoch), from_micros(until)) for number, owner, epoch, until in rows]


def renew(db: Db, owner: str, until: datetime) -> dict[int, int]:
    """Extend every lease ``owner`` still holds to ``until``; what it holds (partition -> epoch).
    Call inside a transaction (the rows are locked in order first)."""
    db.execute(
        f"SELECT number FROM partitions WHERE owner = ? ORDER BY number{db.dialect.lock_rows}", (owner,)
    )
    rows = db.execute(
        "UPDATE partitions SET expires_at = ? WHERE owner = ? RETURNING number, epoch", (micros(until), owner)
    ).fetchall()
    return {int(number): int(epoch) for number, epoch in rows}


def take(db: Db, number: int, owner: str, now: datetime, until: datetime) -> int | None:
    """Take partition ``number`` if it is free or its lease expired; its new epoch, or None."""
    row = db.execute(
        "UPDATE partitions SET owner = ?, epoch = epoch + 1, expires_at = ? "
        "WHERE number = ? AND (owner IS NULL OR expires_at <= ?) RETURNING epoch",
        (owner, micros(until), number, micros(now)),
    ).fetchone()
    return None if row is None else int(row[0])


def release(db: Db, owner: str, held: Mapping[int, int]) -> None:
    """Give partitions back (rebalance, a clean stop): free at once for the next replica."""
    db.executemany(
        "UPDATE partitions SET owner = NULL, expires_at = 0 WHERE number = ? AND owner = ? AND epoch = ?",
        [(number, owner, epoch) for number, epoch in sorted(held.items())],
    )


def leave(db: Db, owner: str) -> None:
    """A clean stop: the replica's row goes (it no longer counts as alive)."""
    db.execute("DELETE FROM replicas WHERE id = ?", (owner,))


def forget_replicas(db: Db, before: datetime) -> None:
    """Rows of replicas silent since ``before`` go (``watcher status`` shows the recent dead)."""
    db.execute("DELETE FROM replicas WHERE last_seen < ?", (micros(before),))


def fence(db: Db, owner: str, held: Mapping[int, int]) -> None:
    """Inside a tick's transaction: raise ``LeaseLostError`` unless ``owner`` still holds every partition
    of ``held`` at the same epoch (rows locked until the transaction ends)."""
    if not held:
        return
    numbers = sorted(held)
    marks = ", ".join("?" * len(numbers))
    rows = db.execute(
        f"SELECT number, owner, epoch FROM partitions WHERE number IN ({marks}) ORDER BY number"
        f"{db.dialect.lock_rows}",
        numbers,
    ).fetchall()
    now_held = {int(number): int(epoch) for number, who, epoch in rows if who == owner}
    lost = [number for number in numbers if now_held.get(number) != held[number]]
    if lost:
        raise LeaseLostError(lost)

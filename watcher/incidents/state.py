"""The durable state of watcher: incidents, the notification outbox, checkpoints, thread refs.

A tick's incident changes, the notifications they cause and the rules' checkpoints are written
in ONE transaction (``StateStore.commit``), so a crash leaves either all of a tick or none of it:
a notification is never lost (its transition was committed with it) and never enqueued twice
(re-evaluating the tick finds the transition already made, and outbox ids are unique). The
outbox drainer (``watcher.notify.outbox``) marks rows delivered, so a restart never re-sends a
delivered notification. A tick that enqueues nothing may skip the flush to disk: power loss
then drops it whole, as if the daemon had stopped before it (the backends' modules say why).

Where the rows live is a backend's business (``watcher.state``: a SQLite file by default,
PostgreSQL with ``state.url``); the SQL here is written once, SQLite-style, and the backend's
dialect translates it. ``watcher.state.factory.open_state`` opens the one the config names. The
durability settings of each backend are in its module (``watcher.state.sqlite``,
``watcher.state.postgres``).

All times are stored as integer microseconds since the Unix epoch (UTC), so they sort and
compare in SQL; naive datetimes are refused.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watcher.incidents import acks, episodes
from watcher.incidents.encoding import (
    from_micros,
    micros,
    notification_from_json,
    notification_to_json,
)
from watcher.incidents.episodes import Episode
from watcher.incidents.model import OPEN, Incident, State
from watcher.incidents.outbox_rows import Claim, OutboxItem, OutboxRows, OutboxStatus
from watcher.incidents.schema import MIGRATIONS, SCHEMA_VERSION, StateStoreError, migrate
from watcher.notify.base import Notification
from watcher.state.base import Backend, Db
from watcher.state.sqlite import JOURNAL_SIZE_LIMIT, SQLiteBackend

Write = Callable[[Db], None]
"""A stage's own rows (routing groups), written inside ``StateStore.commit``'s transaction."""

_NO_CHECKPOINTS: Mapping[str, datetime] = MappingProxyType({})
_OPEN_STATES = frozenset(state.value for state in OPEN)


class StateStore(OutboxRows):
    """watcher's state on one backend. Safe to open from several processes (daemon + CLI) and to
    share between threads of one process (calls are serialised by a lock)."""

    def __init__(self, where: Path | Backend, *, busy_timeout: timedelta = timedelta(seconds=5)) -> None:
        """``where``: a SQLite file, or an open backend (``watcher.state.factory``), which the
        store then owns (``close`` closes it)."""
        self._lock = threading.RLock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.writes = 0  # transactions committed: a write after a failed one says the state works again
        # Rows read or written lately, JSON text -> snapshot: this read's and the one before (``decoded``)
        self._recent: dict[str, Incident] = {}
        self._earlier: dict[str, Incident] = {}
        # The open incidents (text, snapshot) as this store last read or wrote them, and the
        # backend's version then (``_kept_open``); None when not known
        self._open: dict[str, tuple[str, Incident]] | None = None
        self._open_version: int | None = None
        self._db = where if isinstance(where, Backend) else _sqlite(where, busy_timeout)
        self.path: Path | None = getattr(self._db, "path", None)  # the SQLite file, if it is one
        self.name = self._db.name
        try:
            migrate(self._db)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateStoreError(f"{self.name}: cannot use the state file ({exc})") from exc
        except BaseException:
            self._db.close()
            raise

    @property
    def backend(self) -> Backend:
        return self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ incidents

    def incidents(self, rule: str | None = None, states: Collection[State] | None = None) -> list[Incident]:
        """Stored incidents, optionally of one rule and/or in some states, by rule then start."""
        sql = "SELECT data FROM incidents WHERE 1 = 1"
        args: list[Any] = []
        if rule is not None:
            sql, args = sql + " AND rule = ?", [*args, rule]
        if states is not None:
            wanted = [State(state).value for state in states]
            if not wanted:
                return []  # PostgreSQL refuses an empty IN ()
            sql, args = sql + f" AND state IN ({', '.join('?' * len(wanted))})", [*args, *wanted]
        every_open = states is not None and rule is None and set(wanted) == _OPEN_STATES
        with self._lock:
            version = self._db.version() if every_open else None
            kept = self._kept_open(version)
            if states is not None:  # the engine's read of open incidents, every tick: a generation
                self._earlier, self._recent = self._recent, {}
            if kept is None:
                read = [(text, self.decoded(text)) for (text,) in self._db.execute(sql, args).fetchall()]
            else:
                read = kept
                self._recent.update(read)
            if version is not None:
                self._open, self._open_version = {i.fingerprint: (text, i) for text, i in read}, version
        found = [incident for _, incident in read]
        return sorted(found, key=lambda incident: (incident.rule, incident.started_at, incident.fingerprint))

    def _kept_open(self, version: int | None) -> list[tuple[str, Incident]] | None:
        """The open incidents (their texts and snapshots) without reading them, when no other
        connection committed since this store last read them (the backend's ``version``): the
        engine reads them every tick, and between its ticks only its own commits, which keep them
        (``_keep_open``), change them on a state one daemon owns. None when they must be read
        (PostgreSQL, whose replicas write them, tells no version)."""
        if version is None or self._open is None or version != self._open_version:
            return None
        return list(self._open.values())

    def _keep_open(self, written: Sequence[Incident], deletes: Sequence[str]) -> None:
        """After a commit: the kept open incidents as it left them. A snapshot that would not read
        back as it is (``Incident.reads_back``) is read from its row next time instead."""
        if self._open is None:
            return
        for incident in written:
            if incident.state not in OPEN:
                self._open.pop(incident.fingerprint, None)
            elif incident.reads_back():
                self._open[incident.fingerprint] = (incident.encoded(), incident)
            else:
                self._open = None
                return
        for fingerprint in deletes:
            self._open.pop(fingerprint, None)

    def flipped_since(self, since: datetime) -> list[Incident]:
        """The resolved incidents whose evaluations changed status after ``since``: those that may
        still start flapping. Read through an index, so a tick's cost does not grow with the
        resolved incidents of the state's history."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM incidents WHERE state = ? AND last_flip_at > ?",
                (State.RESOLVED.value, micros(since)),
            ).fetchall()
            return self._decode(rows)

    def _decode(self, rows: Sequence[tuple[str]]) -> list[Incident]:
        return [self.decoded(data) for (data,) in rows]

    def decoded(self, text: str) -> Incident:
        """The snapshot a row's JSON text holds. A text read or written since the engine's read of
        the open incidents before the latest one is that snapshot (immutable), not decoded again:
        the engine reads the open incidents every tick, and most are as it wrote them in the
        tick before (the snapshot it wrote is the one ``Incident.encoded`` made the text of, so
        it reads as the same JSON; only Python types JSON does not keep, a tuple for a list, may
        differ from a decoded one's). Texts neither read nor written for two such reads are
        forgotten, so the cache holds about the open incidents and those that may flap."""
        with self._lock:
            found = self._recent.get(text) or self._earlier.get(text)
            if found is None:
                found = Incident.from_json(json.loads(text))
            self._recent[text] = found
            return found

    def incident(self, fingerprint: str) -> Incident | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM incidents WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
        return None if row is None else Incident.from_json(json.loads(row[0]))

    def episodes(self, since: datetime) -> list[Episode]:
        """Raised episodes of every rule still open or ended at ``since`` or later (see
        ``watcher.incidents.episodes``)."""
        with self._lock:
            return episodes.ended_since(self._db, since)

    def commit(
        self,
        changes: Sequence[Incident] = (),
        deletes: Sequence[str] = (),
        notifications: Sequence[Notification] = (),
        checkpoints: Mapping[str, datetime] = _NO_CHECKPOINTS,
        writes: Sequence[Write] = (),
        fence: Write | None = None,
        durable: bool = True,
    ) -> None:
        """Write one tick in one transaction: upsert ``changes``, delete ``deletes`` (pending
        incidents gone back to inactive), enqueue ``notifications``, advance ``checkpoints`` and
        run ``writes`` (stages that keep their own tables in this file, e.g. routing groups).
        ``durable=False`` (the engine's ticks) lets a commit that enqueues no notification skip
        the flush to disk; one that enqueues is always flushed (see ``watcher.state.sqlite``).

        Enqueuing is idempotent on the notification id: an id already in the outbox (in any
        status) is ignored. Each incident of a newly enqueued notification gets
        ``last_notified_at = notification.created_at``, so repeat intervals count from enqueue.
        Checkpoints only move forward. On any error nothing of the tick is written. ``fence`` runs
        first and may refuse the whole tick (a replica whose lease moved on: ``watcher.state.leases``).
        """
        both = {incident.fingerprint for incident in changes} & set(deletes)
        if both:
            raise ValueError(f"incident {sorted(both)[0]} is both changed and deleted in one commit")
        with self._lock:
            durable = durable or bool(notifications)
            written = self._commit(changes, deletes, notifications, checkpoints, writes, fence, durable)
            self._keep_open(written, deletes)

    def _commit(
        self,
        changes: Sequence[Incident],
        deletes: Sequence[str],
        notifications: Sequence[Notification],
        checkpoints: Mapping[str, datetime],
        writes: Sequence[Write],
        fence: Write | None,
        durable: bool,
    ) -> list[Incident]:
        """``commit``'s transaction; the incidents it wrote."""
        with self._transaction(durable):
            if fence is not None:
                fence(self._db)
            notified = self._enqueue(notifications)
            written = self._with_notified(changes, deletes, notified)
            for incident in written:
                last_flip = micros(max(incident.flips)) if incident.flips else None
                resolved = incident.resolved_at if incident.state is State.RESOLVED else None
                self._db.execute(
                    "INSERT INTO incidents (fingerprint, rule, state, data, last_flip_at, resolved_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET rule = excluded.rule, "
                    "state = excluded.state, data = excluded.data, last_flip_at = excluded.last_flip_at, "
                    "resolved_at = excluded.resolved_at",
                    (
                        incident.fingerprint,
                        incident.rule,
                        incident.state.value,
                        incident.encoded(),
                        last_flip,
                        None if resolved is None else micros(resolved),
                    ),
                )
                if incident.reads_back():
                    self._recent[incident.encoded()] = incident
            if deletes:
                self._db.executemany("DELETE FROM incidents WHERE fingerprint = ?", [(fp,) for fp in deletes])
            episodes.record(self._db, written)
            acks.undo_changed(self._db, written, deletes)
            self._db.executemany(
                "INSERT INTO checkpoints (rule, evaluated_at) VALUES (?, ?) ON CONFLICT (rule) "
                "DO UPDATE SET evaluated_at = excluded.evaluated_at "
                "WHERE excluded.evaluated_at > checkpoints.evaluated_at",
                [(rule, micros(at)) for rule, at in checkpoints.items()],
            )
            for write in writes:
                write(self._db)
        return written

    def _with_notified(
        self, changes: Sequence[Incident], deletes: Sequence[str], notified: Mapping[str, datetime]
    ) -> list[Incident]:
        """``changes`` plus stored incidents that were just notified, with last_notified_at set."""
        latest = {incident.fingerprint: incident for incident in changes}
        for fp, at in notified.items():
            current = latest.get(fp) or (None if fp in deletes else self.incident(fp))
            if current is None:
                continue
            if current.last_notified_at is None or current.last_notified_at < at:
                current = current.evolve(last_notified_at=at)
            latest[fp] = current
        return list(latest.values())

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, rule: str) -> datetime | None:
        with self._lock:
            row = self._db.execute("SELECT evaluated_at FROM checkpoints WHERE rule = ?", (rule,)).fetchone()
        return None if row is None else from_micros(row[0])

    def checkpoints(self) -> dict[str, datetime]:
        with self._lock:
            rows = self._db.execute("SELECT rule, evaluated_at FROM checkpoints ORDER BY rule").fetchall()
        return {rule: from_micros(at) for rule, at in rows}

    # ------------------------------------------------------------------ tables of other stages

    @contextmanager
    def reading(self) -> Iterator[Db]:
        """The connection, for a stage reading its own tables (routing groups, silences)."""
        with self._lock:
            yield self._db

    @contextmanager
    def writing(self, durable: bool = True) -> Iterator[Db]:
        """The connection inside one transaction, committed when the block ends (rolled back if
        it raises): for a stage's own writes outside a tick (``watcher silence add``; delivery's
        circuit breakers with ``durable=False``, see ``_transaction``)."""
        with self._lock, self._transaction(durable):
            yield self._db

    def truncate_wal(self) -> bool:
        """Give back the space of the backend's journal (SQLite: cut the WAL to zero bytes, so a
        WAL grown while the disk was full frees it). Never waits: False when a reader or writer
        (the CLI) is in the way, to try again later."""
        with self._lock:
            return self._db.truncate_journal()

    @contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[None]:
        """One transaction; ``durable=False`` may commit it without a flush to disk (delivery
        bookkeeping: see the backends' modules)."""
        with self._db.transaction(durable):
            yield
        self.writes += 1


def _sqlite(path: Path, busy_timeout: timedelta) -> SQLiteBackend:
    try:
        return SQLiteBackend(path, busy_timeout=busy_timeout)
    except sqlite3.DatabaseError as exc:
        raise StateStoreError(f"{path}: cannot use the state file ({exc})") from exc


__all__ = [
    "JOURNAL_SIZE_LIMIT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Claim",
    "OutboxItem",
    "OutboxStatus",
    "StateStore",
    "StateStoreError",
    "Write",
    "migrate",
    "notification_from_json",
    "notification_to_json",
]

"""Acknowledgements: someone took an incident, so its repeat notifications stop.

An ack is kept in the state's ``acks`` table (one per fingerprint, the latest), written by
``watcher ack`` or the Slack "Acknowledge" button, read by the dispatcher and ``watcher incidents``.
It holds for the incident as it was acknowledged: the same episode, state, severity and flapping,
until ``until`` (None: until that changes). A resolve, a new episode, an escalation or
de-escalation, flapping starting or ending undo it: ``StateStore.commit`` deletes the acks of the
incidents it writes that no longer match, in the tick's transaction, so an incident that changes
and changes back is not acknowledged again by the old ack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.incidents.encoding import from_micros, micros
from watcher.incidents.model import Incident, State
from watcher.state.base import Db


@dataclass(frozen=True)
class Ack:
    """Who took an incident, when, why, and until when; and the incident as it was then."""

    fingerprint: str
    started_at: datetime  # the episode acknowledged
    state: str
    severity: str
    flapping: bool
    by: str
    at: datetime
    message: str
    until: datetime | None = None

    @classmethod
    def of(
        cls, incident: Incident, by: str, message: str, at: datetime, until: datetime | None = None
    ) -> Ack:
        """An ack of ``incident`` as it is now."""
        return cls(
            incident.fingerprint,
            incident.started_at,
            incident.state.value,
            incident.severity,
            incident.flapping,
            by,
            at,
            message,
            until,
        )

    def matches(self, incident: Incident) -> bool:
        """Whether ``incident`` is still as it was acknowledged (its expiry aside)."""
        return (
            incident.fingerprint == self.fingerprint
            and incident.started_at == self.started_at
            and incident.state.value == self.state
            and incident.severity == self.severity
            and incident.flapping == self.flapping
        )

    def holds(self, incident: Incident, now: datetime) -> bool:
        """Whether this ack still acknowledges ``incident`` at ``now``."""
        return self.matches(incident) and (self.until is None or now < self.until)

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "at": self.at.isoformat(),
            "message": self.message,
            "until": None if self.until is None else self.until.isoformat(),
        }


def acknowledged(incident: Incident, acks: Mapping[str, Ack], now: datetime) -> Incident:
    """``incident`` carrying its ack when one holds at ``now`` (what templates show as
    ``incident.ack``), else without one."""
    ack = acks.get(incident.fingerprint)
    held = ack.to_json() if ack is not None and ack.holds(incident, now) else None
    return incident if held == incident.ack else incident.evolve(ack=held)


_COLUMNS = "fingerprint, started_at, state, severity, flapping, acked_by, acked_at, message, ends_at"


_HELD = (
    " WHERE NOT (acks.started_at = excluded.started_at AND acks.state = excluded.state"
    " AND acks.severity = excluded.severity AND acks.flapping = excluded.flapping"
    " AND (acks.ends_at IS NULL OR acks.ends_at > ?))"
)
"""The stored ack still holds at ``?`` for the incident as ``excluded`` was taken: ``Ack.holds`` in SQL."""


def record(db: Db, ack: Ack, unless_held_at: datetime | None = None) -> bool:
    """Store ``ack``, replacing the incident's earlier one; with ``unless_held_at``, only if that
    one no longer holds then (the check is the upsert's own condition, on the row it locks: two
    clicks on replicas sharing a PostgreSQL state record one ack). Whether it was stored."""
    held = "" if unless_held_at is None else _HELD
    cursor = db.execute(
        f"INSERT INTO acks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (fingerprint) DO UPDATE SET started_at = excluded.started_at, "
        "state = excluded.state, severity = excluded.severity, "
        "flapping = excluded.flapping, acked_by = excluded.acked_by, acked_at = excluded.acked_at, "
        "message = excluded.message, ends_at = excluded.ends_at" + held,
        (
            ack.fingerprint,
            micros(ack.started_at),
            ack.state,
            ack.severity,
            int(ack.flapping),
            ack.by,
            micros(ack.at),
            ack.message,
            None if ack.until is None else micros(ack.until),
            *(() if unless_held_at is None else (micros(unless_held_at),)),
        ),
    )
    return bool(cursor.rowcount)


def load(db: Db) -> dict[str, Ack]:
    """Every stored ack by fingerprint (expired or not: ``Ack.holds`` tells)."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM acks").fetchall()
    return {
        row[0]: Ack(
            row[0],
            from_micros(row[1]),
            row[2],
            row[3],
            bool(row[4]),
            row[5],
            from_micros(row[6]),
            row[7],
            None if row[8] is None else from_micros(row[8]),
        )
        for row in rows
    }


def remove(db: Db, fingerprints: Iterable[str]) -> int:
    """Delete the acks of ``fingerprints``; how many there were."""
    removed = 0
    for fingerprint in fingerprints:
        removed += db.execute("DELETE FROM acks WHERE fingerprint = ?", (fingerprint,)).rowcount
    return removed


def undo_changed(db: Db, written: Sequence[Incident], deleted: Sequence[str]) -> None:
    """Delete the acks of incidents that changed since they were acknowledged. One read of the
    acks (usually none) per commit that writes incidents, a delete only for those that changed."""
    stored = load(db) if written or deleted else {}
    if not stored:
        return
    gone = [fp for fp in deleted if fp in stored]
    gone += [
        incident.fingerprint
        for incident in written
        if incident.fingerprint in stored
        and (incident.state is State.RESOLVED or not stored[incident.fingerprint].matches(incident))
    ]
    remove(db, gone)

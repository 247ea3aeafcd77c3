"""Silences: label matchers and a time range during which matching incidents are not notified.

They live in the state file's ``silences`` table, so ``watcher silence add|ls|expire`` works on
the file while the daemon runs (WAL; the daemon reads them at each group flush). Expiring a
silence sets its end to now; rows are kept, so ``watcher silence ls --expired`` shows history.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from watcher.incidents.encoding import from_micros, micros
from watcher.incidents.state import StateStore
from watcher.routing.matchers import Matcher, matches_all
from watcher.state.base import Db

SilenceState = Literal["pending", "active", "expired"]
_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at"


class SilenceError(ValueError):
    """A silence cannot be created or expired; the message says why."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)


class Silences:
    """The silences active at ``now``: a ``Muter``."""

    def __init__(self, silences: Iterable[Silence], now: datetime) -> None:
        self.active = [silence for silence in silences if silence.state(now) == "active"]

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return self.muting(labels) is not None

    def muting(self, labels: Mapping[str, str]) -> Silence | None:
        """The first active silence matching ``labels``, or None."""
        return next((silence for silence in self.active if silence.mutes(labels)), None)


def new_silence(
    matchers: Sequence[Matcher],
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
) -> Silence:
    """A checked, not yet stored silence with a fresh id."""
    if not matchers:
        raise SilenceError("a silence needs at least one matcher, e.g. severity=critical")
    if ends_at <= starts_at:
        raise SilenceError(
            f"the silence ends ({ends_at.isoformat()}) before it starts ({starts_at.isoformat()})"
        )
    if ends_at <= now:
        raise SilenceError(f"the silence ends in the past ({ends_at.isoformat()})")
    if not comment.strip():
        raise SilenceError("a silence needs a comment saying why")
    return Silence(secrets.token_hex(6), tuple(matchers), starts_at, ends_at, created_by, comment, now)


class SilenceStore:
    """Silences in the state file."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def add(self, silence: Silence) -> Silence:
        with self._state.writing() as db:
            db.execute(
                f"INSERT INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    silence.id,
                    json.dumps([str(matcher) for matcher in silence.matchers]),
                    micros(silence.starts_at),
                    micros(silence.ends_at),
                    silence.created_by,
                    silence.comment,
                    micros(silence.created_at),
                ),
            )
        return silence

    def list(self, now: datetime, expired: bool = False) -> list[Silence]:
        """Pending and active silences (and expired ones too with ``expired``), by start."""
        with self._state.reading() as db:
            return load_silences(db, None if expired else now)

    def active(self, now: datetime) -> Silences:
        with self._state.reading() as db:
            return Silences(load_silences(db, now), now)

    def expire(self, silence_id: str, now: datetime) -> Silence:
        """End a pending or active silence now; ``SilenceError`` if unknown or already expired."""
        with self._state.writing() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,)).fetchone()
            if row is None:
                raise SilenceError(f"no silence {silence_id!r} (see `watcher silence ls`)")
            silence = _silence(row)
            if silence.state(now) == "expired":
                raise SilenceError(f"silence {silence_id} already expired at {silence.ends_at.isoformat()}")
            starts = min(silence.starts_at, now)
            db.execute(
                "UPDATE silences SET starts_at = ?, ends_at = ? WHERE id = ?",
                (micros(starts), micros(now), silence_id),
            )
        return Silence(**{**silence.__dict__, "starts_at": starts, "ends_at": now})


def load_silences(db: Db, not_ended_by: datetime | None = None) -> list[Silence]:
    """Stored silences, by start; with ``not_ended_by`` only those ending after it."""
    sql, args = f"SELECT {_COLUMNS} FROM silences", []
    if not_ended_by is not None:
        sql, args = sql + " WHERE ends_at > ?", [micros(not_ended_by)]
    return [_silence(row) for row in db.execute(sql + " ORDER BY starts_at, id", args).fetchall()]


def _silence(row: Sequence[Any]) -> Silence:
    silence_id, matchers, starts, ends, created_by, comment, created = row
    return Silence(
        id=silence_id,
        matchers=tuple(Matcher.parse(text) for text in json.loads(matchers)),
        starts_at=from_micros(starts),
        ends_at=from_micros(ends),
        created_by=created_by,
        comment=comment,
        created_at=from_micros(created),
    )

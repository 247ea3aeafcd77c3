"""Each episode of each incident: when it was raised and when it ended.

The ``incidents`` table keeps one row per fingerprint, its latest episode. Reference windows
(``watcher.detect.references``) must know every episode of the rule and group within their reach
(``count`` x ``offset``, a week or more): a window that overlaps one is left out, so a one-off
incident is not the normal a later window is compared with. ``StateStore.commit`` records the
raised incidents it writes here, in the tick's transaction; episodes that ended more than
``EPISODES_KEPT`` before a tick are deleted with the state's other old rows
(``watcher.incidents.retention``, every 10 minutes, not in every commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.incidents.encoding import from_micros, micros
from watcher.incidents.model import Incident, State
from watcher.state.base import Db

EPISODES_KEPT = timedelta(days=400)
"""Longer than any sensible reference reach (``count`` x ``offset``: a year of weekly windows)."""


@dataclass(frozen=True)
class Episode:
    """One raised episode of an incident, in evaluation times."""

    fingerprint: str
    rule: str
    started_at: datetime
    """its first alerting evaluation (when it became pending)"""
    ended_at: datetime
    """the evaluation that resolved it; while open, its latest alerting evaluation"""


def episode(incident: Incident) -> Episode | None:
    """The episode ``incident`` is in, or None when it was never raised (a pending one)."""
    if incident.fired_at is None:
        return None
    if incident.state is State.RESOLVED and incident.resolved_at is not None:
        end = incident.resolved_at
    else:
        end = max(incident.last_alerting_at or incident.fired_at, incident.fired_at)
    return Episode(incident.fingerprint, incident.rule, incident.started_at, end)


def record(db: Db, incidents: Iterable[Incident]) -> None:
    """Insert or extend the episodes of raised ``incidents``."""
    episodes = [found for incident in incidents if (found := episode(incident)) is not None]
    if not episodes:
        return
    db.executemany(
        "INSERT INTO episodes (fingerprint, rule, started_at, ended_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (fingerprint, started_at) DO UPDATE SET ended_at = excluded.ended_at",
        [(e.fingerprint, e.rule, micros(e.started_at), micros(e.ended_at)) for e in episodes],
    )


def ended_since(db: Db, since: datetime) -> list[Episode]:
    """The episodes still open or ended at ``since`` or later, oldest first."""
    rows = db.execute(
        "SELECT fingerprint, rule, started_at, ended_at FROM episodes WHERE ended_at >= ? "
        "ORDER BY started_at, fingerprint",
        (micros(since),),
    ).fetchall()
    return [Episode(fp, rule, from_micros(start), from_micros(end)) for fp, rule, start, end in rows]

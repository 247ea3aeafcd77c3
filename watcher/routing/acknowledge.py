"""Acknowledging an incident, or taking the ack back: the ack kept in the state, and the update of
its messages.

One transaction records the ack (``watcher.incidents.acks``) and enqueues, for each group that
told the incident's firing to one of ``receivers`` (the Slack ones: their message is the one people
look at), an UPDATE in the group's thread carrying the acknowledged incident
(``acknowledged_now``: the templates say "acknowledged by …"). Taking an ack back (``unacknowledge``)
removes it and says so in the same threads (``ack_undone``), as the ack was said there.
``watcher ack`` and the Slack "Acknowledge" button (``watcher.process.slack_actions``) both come here;
a button clicked again on an incident whose ack holds records nothing (``once``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime

from watcher.incidents import acks
from watcher.incidents.acks import Ack
from watcher.incidents.model import RAISED, Event, Incident
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.groups import Group, groups_telling
from watcher.state.base import Db


class AcknowledgeError(ValueError):
    """The incident cannot be acknowledged (it is not open)."""


class AlreadyAcknowledgedError(AcknowledgeError):
    """The incident's ack holds: who took it is ``ack.by``."""

    def __init__(self, incident: Incident, ack: Ack) -> None:
        super().__init__(
            f"incident {incident.fingerprint} ({incident.rule}) is already acknowledged by {ack.by} "
            f"at {ack.at:%Y-%m-%d %H:%M} UTC"
        )
        self.ack = ack


def acknowledge(
    state: StateStore,
    incident: Incident,
    by: str,
    message: str,
    now: datetime,
    until: datetime | None = None,
    receivers: Collection[str] = (),
    once: bool = False,
) -> tuple[Ack, list[Notification]]:
    """Record an ack of ``incident`` as it is now and enqueue the updates of its messages. With
    ``once``, an ack that holds is kept and ``AlreadyAcknowledgedError`` raised, nothing written."""
    if incident.state not in RAISED:
        raise AcknowledgeError(
            f"incident {incident.fingerprint} ({incident.rule}) is {incident.state.value}: "
            "only a firing (or nodata, error) incident can be acknowledged"
        )
    if until is not None and until <= now:
        raise AcknowledgeError("the ack would end before it starts")
    ack = Ack.of(incident, by, message, now, until)
    told = incident.evolve(ack=ack.to_json(), acknowledged_now=True)
    updates = [_update(group, told, now, "ack") for group in _telling(state, incident, receivers)]

    def write(db: Db) -> None:
        if not acks.record(db, ack, unless_held_at=now if once else None):
            raise AlreadyAcknowledgedError(incident, acks.load(db)[incident.fingerprint])

    state.commit(notifications=updates, writes=[write])  # raising in ``write`` writes nothing
    return ack, updates


def unacknowledge(
    state: StateStore, incident: Incident, by: str, now: datetime, receivers: Collection[str] = ()
) -> tuple[Ack, list[Notification]] | None:
    """Take back the ack of ``incident`` and, when it still held (an expired one is no longer
    shown), enqueue an UPDATE in its threads that says so, in one transaction. The ack taken
    back and the updates, or None when the incident had none."""
    with state.reading() as db:
        ack = acks.load(db).get(incident.fingerprint)
    if ack is None:
        return None
    told = incident.evolve(ack=None, ack_undone={**ack.to_json(), "undone_by": by})
    held = ack.holds(incident, now)
    updates = [_update(group, told, now, "unack") for group in _telling(state, incident, receivers) if held]

    def write(db: Db) -> None:
        acks.remove(db, [incident.fingerprint])

    state.commit(notifications=updates, writes=[write])
    return ack, updates


def _telling(state: StateStore, incident: Incident, receivers: Collection[str]) -> list[Group]:
    """The groups that told the incident's firing to one of ``receivers``."""
    with state.reading() as db:
        told = groups_telling(db, (incident.fingerprint, incident.started_at))
    return [group for group in told if group.receiver in receivers]


def _update(group: Group, incident: Incident, now: datetime, what: str) -> Notification:
    raw = f"{group.key}|{group.created_at.isoformat()}|{what}|{incident.fingerprint}|{now.isoformat()}"
    return Notification(
        id=hashlib.sha256(raw.encode()).hexdigest()[:24],
        receiver=group.receiver,
        event=Event.UPDATE,
        incidents=(incident,),
        created_at=now,
        thread_key=group.thread_key,
        group_labels=dict(group.labels),
    )

"""Acknowledging an incident: the ack kept in the state, and the update of its messages.

One transaction records the ack (``watcher.incidents.acks``) and enqueues, for each group that
told the incident's firing to one of ``receivers`` (the Slack ones: their message is the one people
look at), an UPDATE in the group's thread carrying the acknowledged incident
(``acknowledged_now``: the templates say "acknowledged by …"). ``watcher ack`` and the Slack
"Acknowledge" button (``watcher.process.slack_actions``) both come here.
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


def acknowledge(
    state: StateStore,
    incident: Incident,
    by: str,
    message: str,
    now: datetime,
    until: datetime | None = None,
    receivers: Collection[str] = (),
) -> tuple[Ack, list[Notification]]:
    """Record an ack of ``incident`` as it is now and enqueue the updates of its messages."""
    if incident.state not in RAISED:
        raise AcknowledgeError(
            f"incident {incident.fingerprint} ({incident.rule}) is {incident.state.value}: "
            "only a firing (or nodata, error) incident can be acknowledged"
        )
    if until is not None and until <= now:
        raise AcknowledgeError("the ack would end before it starts")
    ack = Ack.of(incident, by, message, now, until)
    with state.reading() as db:
        groups = [
            g
            for g in groups_telling(db, (incident.fingerprint, incident.started_at))
            if g.receiver in receivers
        ]
    told = incident.evolve(ack=ack.to_json(), acknowledged_now=True)
    updates = [_update(group, told, now) for group in groups]

    def write(db: Db) -> None:
        acks.record(db, ack)

    state.commit(notifications=updates, writes=[write])
    return ack, updates


def _update(group: Group, incident: Incident, now: datetime) -> Notification:
    raw = f"{group.key}|{group.created_at.isoformat()}|ack|{incident.fingerprint}|{now.isoformat()}"
    return Notification(
        id=hashlib.sha256(raw.encode()).hexdigest()[:24],
        receiver=group.receiver,
        event=Event.UPDATE,
        incidents=(incident,),
        created_at=now,
        thread_key=group.thread_key,
        group_labels=dict(group.labels),
    )

"""An incident leaving the routes a severity change took it off (Alertmanager: a label change
ends an alert on the routes it no longer matches, so each receiver's story is whole).

A severity change sets the incident's ``severity`` label, so the dispatcher routes it by the new
level. The groups that held it on routes it no longer reaches would keep it firing for good: their
receiver (a pager for criticals) never heard the end. There its member becomes a RESOLVED whose
snapshot is marked ``left_route``; the group tells it at its next flush like any RESOLVED (muted,
held and deduplicated alike) and drops it.
"""

from __future__ import annotations

from watcher.incidents.model import Event, Incident, State
from watcher.routing.groups import Group, Member


def rerouted(event: Event, incident: Incident) -> bool:
    """Whether ``event`` tells a severity change of a raised incident, which may take it off some
    routes and onto others; or the end of its flapping, during which its severity changed untold."""
    return event is not Event.RESOLVED and bool(incident.severity_from or incident.flap_ended)


def holds(group: Group, incident: Incident) -> bool:
    """Whether ``group`` holds ``incident``'s episode as firing."""
    episode = incident.fingerprint, incident.started_at
    return any(member.episode == episode and member.state is State.FIRING for member in group.members)


def left(group: Group, incident: Incident) -> Group:
    """``group`` after a severity change took ``incident`` (its new snapshot) off the group's
    route. A receiver told of its firing is told it left, as a RESOLVED carrying the snapshot marked
    ``left_route`` (still open, on other routes); one never told hears nothing of it."""
    episode = incident.fingerprint, incident.started_at
    members = []
    for member in group.members:
        if member.episode != episode or member.state is not State.FIRING:
            members.append(member)
        elif member.told:
            gone = incident.evolve(left_route=True)
            members.append(Member(gone, State.RESOLVED, notified=member.notified, told=True))
    return group.evolve(members=tuple(members))

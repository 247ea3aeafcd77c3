"""One flush of a due aggregation group: the notifications it sends and the group after it.

Split from ``watcher.routing.dispatch`` so the planner (which groups an incident joins, which are
due, replicas settling) and the flush (what a due group tells, in which notifications, with which
ids) each read on their own. ``flush`` is a pure function of the group, ``now``, the mutes and the
open incidents; the rules it follows are in ``dispatch``'s module docstring.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from watcher.incidents.model import Event, Incident, State
from watcher.notify.base import Notification
from watcher.routing.groups import Group, Member
from watcher.routing.mute import Muter

log = logging.getLogger("watcher.dispatch")


def flush(
    group: Group,
    now: datetime,
    mute: Muter,
    current: Mapping[str, Incident],
    stored: Callable[[str], Incident | None] = lambda fingerprint: None,
    held: Muter | None = None,
) -> tuple[Group | None, list[Notification]]:
    """One flush of a due group: its notifications, and the group after it (None once empty).

    ``current`` holds the open incidents. A firing member whose episode is not among them (its
    route changed on a reload, so its RESOLVED went to another group) is reconciled with the
    ``stored`` incident: resolved if that episode resolved, dropped if it is gone. ``held``
    mutes the whole group and defers what it holds (the route's time intervals).
    """
    refreshed = [_refreshed(member, current, stored) for member in group.members]
    members = [member for member in refreshed if member is not None]
    if held is not None and held.mutes(group.labels):
        return _held(group, members, now), []
    unmuted = [member for member in members if not mute.mutes(member.incident.labels)]
    firing = [member for member in unmuted if member.state is State.FIRING]
    resolved = [member for member in unmuted if member.state is State.RESOLVED]
    sent = [
        _notification(group, Event.RESOLVED, [_as_told(member) for member in told], now, rank)
        for rank, told in enumerate(_one_episode_each(resolved))
    ]
    repeat_due = group.last_sent_at is None or now - group.last_sent_at >= group.repeat_interval
    # An acknowledged incident is not repeated; a group of acknowledged incidents alone repeats nothing.
    repeat_due = repeat_due and not all(member.incident.ack is not None for member in firing)
    if firing and (repeat_due or not all(member.notified for member in firing)):
        event = Event.UPDATE if group.opened else Event.FIRING
        sent.append(_notification(group, event, [m.incident for m in firing], now))
        episodes = {member.episode for member in firing}
        members = [replace(m, notified=True, told=True) if m.episode in episodes else m for m in members]
        group = group.evolve(opened=True, last_sent_at=now)
    remaining = tuple(member for member in members if member.state is State.FIRING)
    if not remaining:
        return None, sent
    later = _next_flush(group.next_flush_at, group.group_interval, now)
    return group.evolve(members=remaining, next_flush_at=later), sent


def _held(group: Group, members: Sequence[Member], now: datetime) -> Group | None:
    """A flush in a mute time interval sends nothing: firing episodes wait, and so do resolved
    ones whose firing was told; a resolved episode never told firing is dropped."""
    kept = tuple(member for member in members if member.state is State.FIRING or member.told)
    if not kept:
        return None
    later = _next_flush(group.next_flush_at, group.group_interval, now)
    return group.evolve(members=kept, next_flush_at=later)


def _refreshed(
    member: Member, current: Mapping[str, Incident], stored: Callable[[str], Incident | None]
) -> Member | None:
    """A firing member with the incident's latest numbers, or reconciled when it is not open."""
    if member.state is not State.FIRING:
        return member
    fingerprint, started = member.episode
    latest = current.get(fingerprint)
    if latest is not None and latest.started_at == started:
        return replace(member, incident=latest)
    found = stored(fingerprint)
    if found is not None and found.started_at == started and found.state is State.RESOLVED:
        return replace(member, incident=found, state=State.RESOLVED)
    log.info("dropping incident %s from its group: it is no longer open", fingerprint)
    return None


def _one_episode_each(members: Iterable[Member]) -> list[list[Member]]:
    """Resolved episodes as the notifications that tell them: the n-th holds the n-th episode
    (oldest first) of every incident that has one, so no notification names an incident twice
    and an incident's earlier episodes are told before its later ones."""
    by_fingerprint: dict[str, list[Member]] = {}
    for member in sorted(members, key=lambda member: member.episode):
        by_fingerprint.setdefault(member.incident.fingerprint, []).append(member)
    depth = max((len(episodes) for episodes in by_fingerprint.values()), default=0)
    return [
        [episodes[rank] for episodes in by_fingerprint.values() if rank < len(episodes)]
        for rank in range(depth)
    ]


def _as_told(member: Member) -> Incident:
    """A resolved episode as its RESOLVED notification carries it: marked found after the fact
    when its firing was never told."""
    return member.incident if member.told else member.incident.evolve(found_late=True)


def _next_flush(scheduled: datetime, interval: timedelta, now: datetime) -> datetime:
    """The first time on the group's ``group_interval`` grid after ``now``."""
    missed = int((now - scheduled) / interval) if now >= scheduled else -1
    return scheduled + (missed + 1) * interval


def _notification(
    group: Group, event: Event, incidents: Sequence[Incident], now: datetime, rank: int = 0
) -> Notification:
    """One notification of a flush. ``rank`` numbers a flush's RESOLVED notifications (0 for the
    first, which keeps the id it always had)."""
    raw = f"{group.key}|{group.created_at.isoformat()}|{group.next_flush_at.isoformat()}|{event.value}"
    raw += f"|{rank}" if rank else ""
    ordered = sorted(incidents, key=lambda i: (i.rule, i.started_at, sorted(i.group.items()), i.fingerprint))
    return Notification(
        id=hashlib.sha256(raw.encode()).hexdigest()[:24],
        receiver=group.receiver,
        event=event,
        incidents=tuple(ordered),
        created_at=now,
        thread_key=group.thread_key,
        group_labels=dict(group.labels),
    )

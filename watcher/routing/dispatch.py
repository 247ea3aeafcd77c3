"""The dispatcher: incident transitions in, one notification per aggregation group out.

Alertmanager's model, with its state in the state file so a restart neither forgets a group nor
re-sends one:

- a firing incident joins one group per route it reaches (group = route + its ``group_by``
  labels); a new group flushes after ``group_wait``, then every ``group_interval``;
- a flush first sends the RESOLVED notifications: the episodes resolved since the last flush,
  at most one episode per incident in each notification, so the earlier episodes of an incident
  that resolved several times (catch-up after a stop, a store outage) go into further RESOLVED
  notifications, in episode order. An episode that resolved before its firing could be told is
  told once, marked ``found_late`` (fired at, resolved at, found after the fact). Then one FIRING
  notification (the group's first; UPDATE afterwards) listing every firing, unmuted incident of
  the group, when one of them is new to the group or the ``repeat_interval`` has passed. Every
  episode is told: none is merged into a later one, no notification is dropped for a newer one;
- muted incidents (silences, inhibition; ``watcher.routing.mute``) are left out and stay new, so
  they are notified at the first flush after the mute ends; one that resolves while muted is
  dropped silently;
- a route's mute / active time intervals hold its groups whole: nothing is sent, firing episodes
  are sent at the first flush after the interval ends, a resolved episode whose firing was told
  is told then too, and one whose firing never was is dropped;
- a severity change (an UPDATE with ``severity_from``) that takes an open incident off a route
  is told there as a RESOLVED marked ``left_route`` (still open: "de-escalated to warning"), as
  Alertmanager ends an alert on the routes a label change takes it off (``routing.leaving``);
  later messages go to the routes it reaches now, and a route it comes onto starts with a FIRING
  (a new group, or the new member of an open one);
- no flap damping here: an incident that resolves and fires again between two flushes is told
  resolved, then firing again (the machine's ``for`` and ``keep_firing_for`` damp flaps);
- a group whose incidents have all resolved is deleted; the next incident starts a new group
  (``group_wait`` again, and a new thread).

``plan`` is a function of the stored groups, the transitions and ``now``; its result is written
by the caller inside the same transaction as the transitions (``StateStore.commit(writes=...)``).
Notification ids derive from the group, its episode, the scheduled flush time, the event and,
for the further RESOLVED notifications of one flush, their rank, so a flush re-run after a crash
produces the same ids and the outbox keeps one copy.

Replicas sharing the state plan and write through ``settle``: a group another replica wrote
between this plan's read and its commit (``GroupMovedError``) rolls the whole commit back and the plan
is made again from the stored groups, so exactly one replica flushes a group and a member joined
at one replica is never lost to another's flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from watcher.config import Config, InhibitRule, Route
from watcher.incidents import acks
from watcher.incidents.acks import Ack, acknowledged
from watcher.incidents.model import RAISED, Event, Incident, State
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.flush import flush
from watcher.routing.groups import (
    Episode,
    Group,
    GroupMovedError,
    KnownMembers,
    Member,
    group_key,
    holding,
    load_groups,
    next_flush,
    save_groups,
    told_episodes,
)
from watcher.routing.leaving import holds, left, rerouted
from watcher.routing.mute import Inhibitor, Intervals, MuteStage, TimeMute
from watcher.routing.silences import Silences, load_silences
from watcher.routing.tree import RouteMatch, resolve
from watcher.state.base import Db
from watcher.tick_report import Transition

log = logging.getLogger("watcher.dispatch")

_ATTEMPTS = 5  # plans of one commit when other replicas keep writing its groups

META_PREFIX = "watcher:"
"""Rule names of watcher's own alerts (``watcher.incidents.meta``)."""


class Change(Protocol):
    """An incident event (the engine's ``Transition``)."""

    @property
    def incident(self) -> Incident: ...

    @property
    def event(self) -> Event: ...

    @property
    def at(self) -> datetime: ...


@dataclass
class Dispatch:
    """What one ``plan`` decided: notifications to enqueue and the group rows to write."""

    notifications: list[Notification] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    deleted: dict[str, int | None] = field(default_factory=dict)  # key -> the revision read

    @property
    def empty(self) -> bool:
        return not (self.notifications or self.groups or self.deleted)

    def write(self, db: Db) -> None:
        """Write the groups in the caller's transaction; ``GroupMovedError`` if another replica wrote
        one of them since this plan read it (see ``Dispatcher.settle``)."""
        gone = {key: revision for key, revision in self.deleted.items() if key not in self.groups}
        save_groups(db, self.groups.values(), gone)


class Dispatcher:
    """Routes incidents into groups and flushes the groups that are due."""

    def __init__(
        self,
        state: StateStore,
        route: Route,
        inhibit: Sequence[InhibitRule] = (),
        meta_receiver: str | None = None,
        intervals: Intervals | None = None,
    ) -> None:
        self.state = state
        self.route = route
        self.inhibit = tuple(inhibit)
        self.meta_receiver = meta_receiver
        self.intervals = dict(intervals or {})
        self.members = KnownMembers(state.decoded)

    @classmethod
    def from_config(cls, config: Config, state: StateStore) -> Dispatcher:
        intervals = {named.name: named.time_intervals for named in config.time_intervals}
        return cls(state, config.route, config.inhibit, config.meta.receiver, intervals)

    def routes(self, incident: Incident) -> list[RouteMatch]:
        """Where an incident goes. watcher's own alerts go to ``meta.receiver`` when configured,
        else through the tree like any other, minus the receiver an alert is about."""
        found = resolve(self.route, incident.labels)
        if not incident.rule.startswith(META_PREFIX):
            return found
        if self.meta_receiver is not None:
            return [replace(found[0], receiver=self.meta_receiver, group_by=("rule",), path=(-1,))]
        about = incident.group.get("receiver")
        kept = [match for match in found if match.receiver != about]
        if not kept:
            log.error("watcher alert %s has no receiver but %s: set meta.receiver", incident.rule, about)
        return kept

    def targets(self, incident: Incident) -> list[tuple[RouteMatch, dict[str, str], str]]:
        """The routes ``incident`` reaches, each with its group labels and group key."""
        found = []
        for match in self.routes(incident):
            labels = match.group_labels(incident.labels)
            found.append((match, labels, group_key(match, labels)))
        return found

    def time_mute(self, group: Group, now: datetime) -> TimeMute | None:
        """The time intervals of the route ``group`` is on, at ``now`` (None: the route is gone)."""
        for member in group.members:
            for match in self.routes(member.incident):
                if group_key(match, match.group_labels(member.incident.labels)) == group.key:
                    return TimeMute(match, self.intervals, now)
        return None

    # ------------------------------------------------------------------ planning

    def plan(
        self, changes: Sequence[Change], now: datetime, current: Mapping[str, Incident] | None = None
    ) -> Dispatch:
        """Apply ``changes`` to their groups and flush every group due at ``now``.

        ``current`` maps fingerprints to the latest snapshots of open incidents (the engine's,
        not yet committed); without it they are read from the state file.
        """
        targets = [(change, self.targets(change.incident)) for change in changes]
        keys = {key for _, routed in targets for *_, key in routed}
        moved = [_episode(change.incident) for change in changes if rerouted(change.event, change.incident)]
        with self.state.reading() as db:
            if not keys and not _due(db, now):
                return Dispatch()  # most ticks: nothing changed, no group due (one cheap read)
            keys |= holding(db, moved) if moved else set()
            groups = load_groups(db, keys, due_by=now, decode=self.members.decode)
            self.members.read(groups.values())
            silences = load_silences(db, now)
            ended = [_episode(c.incident) for c in changes if c.event is Event.RESOLVED]
            told = told_episodes(db, ended)
            taken = acks.load(db)
        dispatch = Dispatch()
        for change, routed in targets:
            acked = _held_ack(change, taken, now)
            for match, labels, key in routed:
                group = groups.get(key) or Group.start(match, labels, change.at)
                groups[key] = dispatch.groups[key] = joined(group, change, told, acked)
            if rerouted(change.event, change.incident):
                _leave(groups, dispatch, {key for *_, key in routed}, change.incident)
        due = sorted((g for g in groups.values() if g.next_flush_at <= now), key=_flush_order)
        if not due:
            return dispatch
        if current is None:
            read = {i.fingerprint: i for i in self.state.incidents(states=RAISED)}
            read |= {change.incident.fingerprint: change.incident for change in changes}
            current = {fp: incident for fp, incident in read.items() if incident.state is not State.RESOLVED}
        current = {fp: acknowledged(incident, taken, now) for fp, incident in current.items()}
        firing = [incident for incident in current.values() if incident.state in RAISED]
        # This tick's resolved snapshots are not committed yet: a group left behind (its incident's
        # route changed) that is due now finds its member resolved, not gone.
        resolved_now = {c.incident.fingerprint: c.incident for c in changes if c.event is Event.RESOLVED}

        def stored(fingerprint: str) -> Incident | None:
            return resolved_now.get(fingerprint) or self.state.incident(fingerprint)

        mute = MuteStage([Silences(silences, now), Inhibitor(self.inhibit, firing)])
        for group in due:
            held = self.time_mute(group, now)
            flushed, sent = flush(group, now, mute, current, stored, held)
            dispatch.notifications += sent
            if flushed is None:
                dispatch.groups.pop(group.key, None)
                dispatch.deleted[group.key] = group.revision
            else:
                dispatch.groups[group.key] = flushed
        return dispatch

    def reroute(self, incidents: Sequence[Incident], now: datetime) -> Dispatch:
        """After the routes changed (a reload), the groups of the raised ``incidents`` as the new
        routes hold them: each joins the groups of routes it reaches now that do not hold it (told
        there as new, in a new group's FIRING or an open group's next UPDATE) and leaves those
        holding it as firing that are on no route of it now (told there, if its firing was, as a
        RESOLVED marked ``left_route`` and ``rerouted``). A group on both keeps it as it is, so a
        reload that changes no incident's routes changes no group. A group's identity is its
        route's position and receiver (``group_key``): moving a route in the tree moves its open
        incidents to new groups (and threads) too."""
        raised = [incident for incident in incidents if incident.state in RAISED]
        targets = {incident.fingerprint: self.targets(incident) for incident in raised}
        with self.state.reading() as db:
            keys = holding(db, [_episode(incident) for incident in raised])
            keys |= {key for routed in targets.values() for *_, key in routed}
            groups = load_groups(db, keys, decode=self.members.decode)
            self.members.read(groups.values())
        dispatch = Dispatch()
        for incident in raised:
            episode, on = _episode(incident), set()
            for match, labels, key in targets[incident.fingerprint]:
                on.add(key)
                group = groups.get(key)
                if group is not None and any(member.episode == episode for member in group.members):
                    continue
                group = group or Group.start(match, labels, now)
                groups[key] = dispatch.groups[key] = joined(group, Transition(incident, Event.FIRING, now))
            _leave(groups, dispatch, on, incident.evolve(rerouted=True))
        return dispatch

    def settle(
        self,
        changes: Sequence[Change],
        now: datetime,
        commit: Callable[[Dispatch], None],
        current: Mapping[str, Incident] | None = None,
    ) -> Dispatch:
        """``plan`` and hand the dispatch to ``commit``, which must run ``Dispatch.write`` in the
        transaction that enqueues its notifications. When another replica wrote one of its groups
        meanwhile (``GroupMovedError``: the transaction rolled back) the plan is made again from the
        stored groups, up to ``_ATTEMPTS`` times."""
        return self.settled(lambda: self.plan(changes, now, current), commit)

    def settled(self, make: Callable[[], Dispatch], commit: Callable[[Dispatch], None]) -> Dispatch:
        """``settle`` for any plan ``make`` draws from the stored groups (``plan``, ``reroute``)."""
        for attempt in range(1, _ATTEMPTS + 1):
            dispatch = make()
            try:
                commit(dispatch)
            except GroupMovedError as moved:
                if attempt == _ATTEMPTS:
                    raise
                log.debug("group %s was written by another replica meanwhile: planning again", moved)
                continue
            self.members.wrote(dispatch.groups.values(), dispatch.deleted)
            return dispatch
        raise AssertionError("unreachable")  # pragma: no cover

    def flush(self, now: datetime) -> list[Notification]:
        """Flush the groups due at ``now`` and enqueue their notifications (between ticks)."""
        with self.state.reading() as db:
            if not _due(db, now):
                return []

        def commit(dispatch: Dispatch) -> None:
            if not dispatch.empty:
                self.state.commit(notifications=dispatch.notifications, writes=[dispatch.write])

        return self.settle((), now, commit).notifications


def _leave(groups: dict[str, Group], dispatch: Dispatch, on: Collection[str], incident: Incident) -> None:
    """``incident`` (its new snapshot) leaves the groups holding it as firing that are not ``on``
    its routes now (``watcher.routing.leaving``)."""
    for group in [g for g in groups.values() if g.key not in on and holds(g, incident)]:
        groups[group.key] = dispatch.groups[group.key] = left(group, incident)


def _due(db: Db, now: datetime) -> bool:
    """Whether a group is due at ``now``."""
    due = next_flush(db)
    return due is not None and due <= now


def _flush_order(group: Group) -> tuple[datetime, str]:
    return group.next_flush_at, group.key


def _held_ack(change: Change, taken: Mapping[str, Ack], now: datetime) -> bool:
    ack = taken.get(change.incident.fingerprint)
    return ack is not None and ack.holds(change.incident, now)


def joined(
    group: Group, change: Change, told_elsewhere: Collection[Episode] = (), acked: bool = False
) -> Group:
    """``group`` after one transition of one of its incidents. ``told_elsewhere``: episodes other
    groups told firing (a RESOLVED that a route change sent here is not found late). ``acked``:
    the incident is acknowledged as it is, so the rule's own repeat (an UPDATE that changed
    nothing an ack covers) is not told again."""
    incident, episode = change.incident, _episode(change.incident)
    members = {member.episode: member for member in group.members}
    known = members.get(episode)
    told = known.told if known is not None else episode in told_elsewhere
    if change.event is Event.RESOLVED:
        notified = known.notified if known is not None else False
        members[episode] = Member(incident, State.RESOLVED, notified, told)
    elif acked and known is not None and change.event is Event.UPDATE:
        members[episode] = replace(known, incident=incident)
    else:
        # FIRING joins; UPDATE (the rule's own repeat_interval) asks for the incident to be told again.
        members[episode] = Member(incident, State.FIRING, notified=False, told=told)
    return group.evolve(members=tuple(members[key] for key in sorted(members)))


def _episode(incident: Incident) -> Episode:
    return incident.fingerprint, incident.started_at

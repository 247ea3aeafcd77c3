"""Aggregation groups and how they are kept in the state file.

A group is one route's incidents that share the route's ``group_by`` labels (Alertmanager's
aggregation group). Its members are incident *episodes* (fingerprint + start), each firing or
resolved, with whether its firing has been told. The dispatcher decides; this module only holds
the data and reads/writes the ``dispatch_groups`` / ``dispatch_members`` tables, inside the
caller's transaction.

Replicas sharing a state may plan the same group at once (its incidents come from rules held by
different replicas, and every replica flushes what is due). A group is written only if it is
still the ``revision`` it was read at (a new one: only if no other replica created it meanwhile);
otherwise ``save_groups`` raises ``GroupMovedError``, the transaction rolls back and the dispatcher plans
again from the stored group. So a member joined by one replica is never overwritten by another's
flush, a group has one start (one thread), and of two replicas flushing it only the first counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from watcher.incidents.encoding import dumps, from_micros, micros, span_micros
from watcher.incidents.model import Incident, State
from watcher.routing.tree import RouteMatch
from watcher.state.base import Db

Episode = tuple[str, datetime]
"""One episode of an incident: its fingerprint and when it started (became pending)."""
Decode = Callable[[str], Incident]
"""A stored incident's JSON text to its snapshot."""


class GroupMovedError(Exception):
    """Another replica wrote a group after it was read for this plan: plan again."""


@dataclass(frozen=True)
class Member:
    """One incident episode in a group. ``incident`` is its latest known snapshot.

    ``notified``: its firing, as it is now, was in the group's last firing/update notification
    (an UPDATE event clears it to ask for a repeat). ``told``: its firing was told at least once;
    a resolved episode that never was is told as found after the fact.
    """

    incident: Incident
    state: State  # FIRING or RESOLVED
    notified: bool = False
    told: bool = False

    @property
    def episode(self) -> Episode:
        return self.incident.fingerprint, self.incident.started_at


@dataclass(frozen=True)
class Group:
    """An aggregation group and its timers. ``created_at`` starts the group's episode: a group
    whose members have all resolved (and been told) is deleted, and the next incident starts a
    new group, a new ``group_wait`` and a new thread."""

    key: str
    receiver: str
    labels: Mapping[str, str]
    created_at: datetime
    next_flush_at: datetime
    group_interval: timedelta
    repeat_interval: timedelta
    last_sent_at: datetime | None = None
    opened: bool = False  # a FIRING notification started the group's thread
    members: tuple[Member, ...] = field(default=())
    revision: int | None = None  # as stored when read (None: not stored yet)

    @property
    def thread_key(self) -> str:
        return f"{self.key}|{self.created_at.isoformat()}"

    def evolve(self, **changes: Any) -> Group:
        return replace(self, **changes)

    @classmethod
    def start(cls, route: RouteMatch, labels: Mapping[str, str], at: datetime) -> Group:
        """A new group on ``route`` whose first incident arrived at ``at``: it flushes after
        ``group_wait``."""
        return cls(
            key=group_key(route, labels),
            receiver=route.receiver,
            labels=dict(labels),
            created_at=at,
            next_flush_at=at + route.group_wait,
            group_interval=route.group_interval,
            repeat_interval=route.repeat_interval,
        )


def group_key(route: RouteMatch, labels: Mapping[str, str]) -> str:
    """Stable identity of a group: the route (its position and receiver) and the group labels."""
    payload = json.dumps([route.receiver, list(route.path), sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class KnownMembers:
    """The snapshots of the members of the groups this process read or wrote lately, by their
    JSON text. A group is read whenever one of its incidents changes or it is due, and its
    members' texts, written at its last flush, are older than the state store's memory of texts
    (``StateStore.decoded``: the last two reads of the open incidents), so every read decoded
    each member's ~5 KB again (most of a tick's ``load_groups``). A snapshot is taken for a text
    only when that very text is read, so a member another replica rewrote is decoded afresh, and
    only a snapshot that reads back as its text (``Incident.reads_back``) is kept for it."""

    LIMIT = 1024  # groups remembered; past it (groups deleted by other replicas) all are forgotten

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._by_group: dict[str, dict[str, Incident]] = {}
        self._known: dict[str, Incident] = {}
        self._read: dict[str, Incident] = {}

    def decode(self, text: str) -> Incident:
        """A member's snapshot from its stored text."""
        found = self._known.get(text) or self._decode(text)
        self._read[text] = found
        return found

    def read(self, groups: Iterable[Group]) -> None:
        """Remember the members of ``groups``, just read through ``decode``."""
        texts = {id(incident): text for text, incident in self._read.items()}
        self._read = {}
        for group in groups:
            members = ((texts.get(id(member.incident)), member.incident) for member in group.members)
            self._by_group[group.key] = {text: incident for text, incident in members if text is not None}
        self._index()

    def wrote(self, groups: Iterable[Group], deleted: Iterable[str]) -> None:
        """Remember the members of ``groups`` as a committed plan wrote them; forget ``deleted``."""
        for key in deleted:
            self._by_group.pop(key, None)
        for group in groups:
            self._by_group[group.key] = {
                member.incident.encoded(): member.incident
                for member in group.members
                if member.incident.reads_back()
            }
        self._index()

    def _index(self) -> None:
        if len(self._by_group) > self.LIMIT:
            self._by_group.clear()
        self._known = {text: found for kept in self._by_group.values() for text, found in kept.items()}


# ---------------------------------------------------------------------- persistence

_GROUP_COLUMNS = (
    "key, receiver, labels, created_at, next_flush_at, last_sent_at, opened, group_interval, repeat_interval"
)
_SETTINGS = (
    "receiver = ?, labels = ?, created_at = ?, next_flush_at = ?, last_sent_at = ?, opened = ?, "
    "group_interval = ?, repeat_interval = ?"
)


def load_groups(
    db: Db, keys: Collection[str] = (), due_by: datetime | None = None, decode: Decode | None = None
) -> dict[str, Group]:
    """The groups named in ``keys`` plus, with ``due_by``, every group due to flush by then;
    ``decode`` reads a member's JSON (``StateStore.decoded``: a snapshot it knows is not decoded
    again)."""
    clauses: list[str] = []
    args: list[str | int] = []
    if keys:
        clauses.append(f"key IN ({', '.join('?' * len(keys))})")
        args += list(keys)
    if due_by is not None:
        clauses.append("next_flush_at <= ?")
        args.append(micros(due_by))
    if not clauses:
        return {}
    where = " OR ".join(clauses)
    rows = db.execute(
        f"SELECT {_GROUP_COLUMNS}, revision FROM dispatch_groups WHERE {where}", args
    ).fetchall()
    return _with_members(db, [_group(row) for row in rows], decode or _decoded)


def all_groups(db: Db) -> list[Group]:
    rows = db.execute(
        f"SELECT {_GROUP_COLUMNS}, revision FROM dispatch_groups ORDER BY created_at, key"
    ).fetchall()
    return list(_with_members(db, [_group(row) for row in rows]).values())


def told_episodes(db: Db, episodes: Collection[Episode]) -> set[Episode]:
    """Which of ``episodes`` (fingerprint, start) some group has told firing. A route change on a
    reload sends an incident's RESOLVED to a group that never held it; it was told all the same."""
    return {episode for _, episode in _holders(db, episodes, told=True)}


def groups_telling(db: Db, episode: Episode) -> list[Group]:
    """The groups that hold ``episode`` and have told its firing (those with a message about it)."""
    fingerprint, started = episode
    rows = db.execute(
        f"SELECT group_key FROM dispatch_members WHERE fingerprint = ? AND started_at = ? "
        f"AND notified != {_UNTOLD} ORDER BY group_key",
        (fingerprint, micros(started)),
    ).fetchall()
    return list(load_groups(db, [key for (key,) in rows]).values())


def holding(db: Db, episodes: Collection[Episode]) -> set[str]:
    """The keys of the groups that hold one of ``episodes``, told or not."""
    return {key for key, _ in _holders(db, episodes)}


def _holders(db: Db, episodes: Collection[Episode], told: bool = False) -> list[tuple[str, Episode]]:
    """(group key, episode) for each group holding one of ``episodes``; with ``told``, only
    those that have told its firing."""
    fingerprints = sorted({fingerprint for fingerprint, _ in episodes})
    if not fingerprints:
        return []
    rows = db.execute(
        f"SELECT group_key, fingerprint, started_at FROM dispatch_members "
        f"WHERE {f'notified != {_UNTOLD} AND ' if told else ''}"
        f"fingerprint IN ({', '.join('?' * len(fingerprints))})",
        fingerprints,
    ).fetchall()
    wanted = set(episodes)
    found = [(key, (fingerprint, from_micros(started))) for key, fingerprint, started in rows]
    return [(key, episode) for key, episode in found if episode in wanted]


def next_flush(db: Db) -> datetime | None:
    """When the earliest group is due, or None without groups."""
    (value,) = db.execute("SELECT min(next_flush_at) FROM dispatch_groups").fetchone()
    return None if value is None else from_micros(value)


def save_groups(db: Db, groups: Iterable[Group], deleted: Mapping[str, int | None]) -> None:
    """Replace the stored rows of ``groups`` and delete the groups in ``deleted`` (key -> the
    revision read), with their members. Raises ``GroupMovedError`` when one of them is no longer as it
    was read (see the module's docstring): the caller's transaction must then roll back."""
    for key, revision in sorted(deleted.items()):
        if revision is None:
            continue  # started and emptied by one plan: never stored
        db.execute("DELETE FROM dispatch_members WHERE group_key = ?", (key,))
        if not db.execute(
            "DELETE FROM dispatch_groups WHERE key = ? AND revision = ?", (key, revision)
        ).rowcount:
            raise GroupMovedError(key)
    for group in sorted(groups, key=lambda group: group.key):  # one lock order for every replica
        settings = (
            group.receiver,
            dumps(dict(group.labels)),
            micros(group.created_at),
            micros(group.next_flush_at),
            None if group.last_sent_at is None else micros(group.last_sent_at),
            int(group.opened),
            span_micros(group.group_interval),
            span_micros(group.repeat_interval),
        )
        if group.revision is None:
            written = db.execute(
                f"INSERT INTO dispatch_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (group.key, *settings),
            )
        else:
            written = db.execute(
                f"UPDATE dispatch_groups SET {_SETTINGS}, revision = revision + 1 "
                "WHERE key = ? AND revision = ?",
                (*settings, group.key, group.revision),
            )
        if not written.rowcount:
            raise GroupMovedError(group.key)
        db.execute("DELETE FROM dispatch_members WHERE group_key = ?", (group.key,))
        db.executemany(
            "INSERT INTO dispatch_members (group_key, fingerprint, started_at, state, notified, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    group.key,
                    member.incident.fingerprint,
                    micros(member.incident.started_at),
                    member.state.value,
                    _told_column(member),
                    member.incident.encoded(),
                )
                for member in group.members
            ],
        )


def _group(row: tuple[Any, ...]) -> Group:
    key, receiver, labels, created, next_flush_at, last_sent, opened, interval, repeat, revision = row
    return Group(
        key=key,
        receiver=receiver,
        labels=json.loads(labels),
        created_at=from_micros(created),
        next_flush_at=from_micros(next_flush_at),
        last_sent_at=None if last_sent is None else from_micros(last_sent),
        opened=bool(opened),
        group_interval=timedelta(microseconds=interval),
        repeat_interval=timedelta(microseconds=repeat),
        revision=revision,
    )


def _decoded(text: str) -> Incident:
    return Incident.from_json(json.loads(text))


def _with_members(db: Db, groups: list[Group], decode: Decode = _decoded) -> dict[str, Group]:
    if not groups:
        return {}
    keys = [group.key for group in groups]
    rows = db.execute(
        f"SELECT group_key, state, notified, data FROM dispatch_members "
        f"WHERE group_key IN ({', '.join('?' * len(keys))}) ORDER BY started_at, fingerprint",
        keys,
    ).fetchall()
    members: dict[str, list[Member]] = {key: [] for key in keys}
    for key, state, told, data in rows:
        incident = decode(data)
        members[key].append(Member(incident, State(state), notified=told == _NOTIFIED, told=told != _UNTOLD))
    return {group.key: group.evolve(members=tuple(members[group.key])) for group in groups}


# The ``notified`` column holds both flags of a member; 0 and 1 are what it held before ``told``.
_UNTOLD, _NOTIFIED, _TOLD_BEFORE = 0, 1, 2


def _told_column(member: Member) -> int:
    if member.notified:
        return _NOTIFIED
    return _TOLD_BEFORE if member.told else _UNTOLD

"""Meta-alerts: watcher's own failures are incidents too, routed like any other.

Three kinds, each an incident of a reserved rule name (``watcher:...``) with the failing part as
its group:

- ``watcher:store-unreachable`` {source}: the source's queries failed ``store_failures`` ticks in
  a row; resolves at the first tick they are answered again;
- ``watcher:receiver-dead`` {receiver}: a notification to the receiver became a dead letter;
  resolves when the receiver takes a notification again. It is never sent to the receiver it is
  about (``Dispatcher.routes``), and ``meta.receiver`` in watcher.yaml names where it goes;
- ``watcher:rules-invalid``: the rule files failed to load (after a reload); resolves when they
  load cleanly;
- ``watcher:replicas-missing``: fewer replicas heartbeat than ``ha.replicas`` for a lease; raised
  by the replica holding partition 0 only (``watcher.process.partitions``), so it is raised once;
- ``watcher:state-unwritable``: the state file (or an embedded store) cannot be written. It cannot
  go through the state file's outbox, so ``watcher.process.write_guard.DirectAlert`` keeps it in memory
  (built by ``observe`` below) and sends it straight to the receiver's notifier.

``observe`` is the pure state machine (a failure streak fires after ``needed`` failures, one
success resolves); ``Watchdog`` feeds it from tick and drain reports and commits its incidents
with their notifications, through the dispatcher, in one transaction, first checking that the
incidents are still as read (replicas sharing a state observe the same failures: the one that lost
the race observes again, so an alert fires once).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from watcher.config import HaConfig
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore, Write
from watcher.notify.outbox import DrainReport
from watcher.routing.dispatch import META_PREFIX, Dispatcher
from watcher.rules.models import Rule
from watcher.state.base import Db
from watcher.tick_report import TickReport, Transition

log = logging.getLogger("watcher.process.meta")

STORE_UNREACHABLE = f"{META_PREFIX}store-unreachable"
RECEIVER_DEAD = f"{META_PREFIX}receiver-dead"
RULES_INVALID = f"{META_PREFIX}rules-invalid"
REPLICAS_MISSING = f"{META_PREFIX}replicas-missing"
_MAX_SUMMARY = 500
_ATTEMPTS = 3


def observe(
    incident: Incident | None,
    failing: bool,
    now: datetime,
    *,
    rule: str,
    group: Mapping[str, str],
    summary: str,
    severity: str = "critical",
    needed: int = 1,
) -> tuple[Incident | None, list[Event]]:
    """The next snapshot of a meta incident after one observation, and its events.

    Failing: a streak starts pending (``value`` counts the failures) and fires at ``needed``.
    Not failing: a pending streak is forgotten (None), a firing incident resolves.
    """
    is_open = incident is not None and incident.state is not State.RESOLVED
    if not failing:
        if incident is None or not is_open:
            return incident, []
        if incident.state is State.PENDING:
            return None, []
        return incident.evolve(state=State.RESOLVED, resolved_at=now, last_evaluated_at=now), [Event.RESOLVED]
    failures = int(incident.value or 0) + 1 if incident is not None and is_open else 1
    annotations = {"summary": _literal(summary)}
    if incident is None or not is_open:
        incident = Incident(
            fingerprint=fingerprint(rule, group),
            rule=rule,
            group=dict(group),
            labels={"rule": rule, "severity": severity, **group},
            annotations=annotations,
            severity=severity,
            state=State.PENDING,
            value=None,
            threshold=float(needed),
            started_at=now,
        )
    updated = incident.evolve(
        value=float(failures), annotations=annotations, last_alerting_at=now, last_evaluated_at=now
    )
    if updated.state is State.PENDING and failures >= needed:
        return updated.evolve(state=State.FIRING, fired_at=now), [Event.FIRING]
    return updated, []


def _literal(text: str) -> str:
    """Annotations are templates; an error text is shown as written, never interpreted."""
    text = text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "…"
    return "{% raw %}" + text.replace("{% endraw %}", "") + "{% endraw %}"


class MetaMovedError(Exception):
    """Another replica wrote a meta incident between this one's read and its commit."""


def _unchanged(read: Mapping[str, Incident | None]) -> Write:
    """First in a meta commit's transaction: the incidents are still as they were read (rows
    locked until the commit), else ``MetaMovedError``. Replicas sharing a state observe the same
    store failing at the same tick; without this both would fire the same alert."""

    def check(db: Db) -> None:
        for key, before in sorted(read.items()):
            row = db.execute(
                f"SELECT data FROM incidents WHERE fingerprint = ?{db.dialect.lock_rows}", (key,)
            ).fetchone()
            if (None if row is None else Incident.from_json(json.loads(row[0]))) != before:
                raise MetaMovedError(key)

    return check


class _Observation(NamedTuple):
    rule: str
    group: Mapping[str, str]
    failing: bool
    summary: str = ""
    needed: int = 1
    severity: str = "critical"


class Watchdog:
    """Turns the daemon's reports into meta incidents and commits them."""

    def __init__(self, state: StateStore, dispatcher: Dispatcher, store_failures: int = 3) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.store_failures = store_failures

    def tick_done(self, report: TickReport, rules: Mapping[str, Rule], now: datetime) -> list[Transition]:
        """After an engine tick: a source is failing when any of its rules got no answer."""
        failing: dict[str, str] = {}
        for name, error in report.errors.items():
            if name in rules:
                failing.setdefault(rules[name].source, error)
        observations = []
        for source in sorted(report.round_trips):
            error = failing.get(source, "")
            summary = f"source {source} failed {self.store_failures} ticks in a row: {error}"
            group = {"source": source}
            observations.append(
                _Observation(STORE_UNREACHABLE, group, source in failing, summary, self.store_failures)
            )
        return self._observe(observations, now)

    def drain_done(self, report: DrainReport, now: datetime) -> list[Transition]:
        """After an outbox drain: a dead letter fires its receiver's alert, a delivery resolves it."""
        dead: dict[str, str] = {}
        for notification_id in report.dead_letters:
            item = self.state.outbox_item(notification_id)
            if item is not None:
                dead.setdefault(item.notification.receiver, item.last_error)
        observations = [
            _Observation(RECEIVER_DEAD, {"receiver": r}, True, f"notifications to {r} are dead letters: {e}")
            for r, e in sorted(dead.items())
        ]
        back = sorted(report.delivered_to - dead.keys())
        observations += [_Observation(RECEIVER_DEAD, {"receiver": r}, False) for r in back]
        return self._observe(observations, now)

    def rules_loaded(self, errors: Sequence[str], now: datetime) -> list[Transition]:
        """After (re)loading rule files: call with the load errors (empty when all loaded)."""
        shown = "; ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
        summary = f"{len(errors)} rule file error(s): {shown}"
        return self._observe([_Observation(RULES_INVALID, {}, bool(errors), summary, severity="error")], now)

    def replicas_seen(self, alive: int, ha: HaConfig, now: datetime) -> list[Transition]:
        """After a heartbeat of the replica speaking for all: fewer than ``ha.replicas`` alive for
        a whole lease (as long as a dead replica keeps its partitions) fires; all back resolves."""
        summary = (
            f"{alive} of {ha.replicas} watcher replicas alive: a lost replica's rules wait for the others"
        )
        needed = max(1, math.ceil(ha.lease / ha.heartbeat))
        seen = _Observation(REPLICAS_MISSING, {}, alive < ha.replicas, summary, needed, "warning")
        return self._observe([seen], now)

    def _observe(self, observations: Sequence[_Observation], now: datetime) -> list[Transition]:
        """Step and commit; observed again on what another replica committed meanwhile (a few
        times: then this observation is dropped, the next one counts)."""
        for _ in range(_ATTEMPTS):
            try:
                return self._observe_once(observations, now)
            except MetaMovedError as moved:
                log.info("meta incident %s was written by another replica meanwhile: observing again", moved)
        return []

    def _observe_once(self, observations: Sequence[_Observation], now: datetime) -> list[Transition]:
        read: dict[str, Incident | None] = {}
        changes: list[Incident] = []
        deletes: list[str] = []
        transitions: list[Transition] = []
        for seen in observations:
            key = fingerprint(seen.rule, seen.group)
            current = read[key] = self.state.incident(key)
            if not seen.failing and (current is None or current.state is State.RESOLVED):
                continue  # the common case: healthy and nothing open, nothing to write
            updated, events = observe(
                current,
                seen.failing,
                now,
                rule=seen.rule,
                group=seen.group,
                summary=seen.summary,
                severity=seen.severity,
                needed=seen.needed,
            )
            if updated is None:
                deletes.append(key)
                continue
            changes.append(updated)
            transitions += [Transition(updated, event, now) for event in events]
            for event in events:
                told = seen.summary if event is Event.FIRING else dict(seen.group)
                log.warning("watcher alert %s %s: %s", seen.rule, event.value, told)
        if not changes and not deletes:
            return []
        self.dispatcher.settle(
            transitions,
            now,
            lambda dispatch: self.state.commit(
                changes, deletes, dispatch.notifications, writes=[dispatch.write], fence=_unchanged(read)
            ),
        )
        return transitions

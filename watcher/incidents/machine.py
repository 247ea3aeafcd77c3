"""The incident state machine: one pure step per finding.

``step`` turns the previous snapshot of an incident (``None`` = inactive) and a detector's
finding into the next snapshot and the events worth telling people about. No I/O, no clock:
``run`` and ``backtest`` share it, and the state store persists what it returns.

Transitions (``for_``, ``keep_firing_for`` and ``repeat_interval`` come from the rule)::

    inactive/resolved --alerting--> pending --alerting for `for_`--> firing   (Event.FIRING)
    pending           --ok--------> inactive                                  (silent)
    firing            --alerting--> firing   every `repeat_interval`          (Event.UPDATE)
    firing            --ok--------> firing   while cleared < `keep_firing_for`
    firing            --ok--------> resolved                                  (Event.RESOLVED)
    firing            --rule gone---> resolved, with a note (``retire``)          (Event.RESOLVED)
    any               --no data / store error--> unchanged, with a note

Flap damping: an alert must hold for ``for_`` to fire, and a firing incident must stay clear
for ``keep_firing_for`` to resolve. A resolved incident that alerts again starts a new episode
at pending, so ``for_`` damps re-fires too. Across episodes only the recent values of the signal
and its recent status changes (flapping, below) are remembered, on the one snapshot, so the
machine stays a function of it. The dispatcher (``watcher.routing.dispatch``) does not damp: it
tells every episode, even a resolve and re-fire between two flushes of the incident's group.

A missing measurement (not enough data, a store error) is never evidence by default
(``on_nodata: keep``, ``on_error: keep``): it neither fires nor resolves, it only explains itself
in ``note``. A rule may say otherwise: ``ok`` takes it as an OK finding, ``alerting`` as an
alerting one, and ``nodata`` / ``error`` as alerting into that visible state (pending for
``for_``, then told with a FIRING; a change between firing, nodata and error is one UPDATE of the
same episode; an OK finding resolves it like a firing).

Flapping (``watcher.incidents.flapping``, on unless the rule or watcher.yaml says ``false``):
every ALERTING/OK evaluation whose status differs from the one before is a change, remembered for
the rule's flapping window (a pending incident that clears is kept, resolved without firing, while
it has changes; the engine steps resolved incidents that have some). When the changes reach
``changes`` the incident starts flapping: it is raised (FIRING when it was not told, else an
UPDATE) with the count in ``note``; while flapping it stays raised and nothing is told; it settles
when fewer than half as many changes remain, with one UPDATE (still alerting) or RESOLVED,
``flap_ended`` set on that snapshot.

Severity follows the evidence: a finding carries the level it reached (a threshold's levels,
drift's critical; else the rule's ``severity``). A pending incident takes the latest level, so its
FIRING tells the level of the evaluation that fired it. A firing incident changes severity when
the new level holds like a state does: an escalation for ``for_``, a de-escalation for
``keep_firing_for`` (at once when they are 0), counted from the first evaluation at that level; an
evaluation at another level, or one that clears, starts over. The change is one UPDATE
(``severity_from`` names the level before), and the incident's ``severity`` label changes with it,
so routing sees the new level. An OK finding inside ``keep_firing_for`` keeps the severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from watcher.detect.base import Finding, Status
from watcher.incidents.flapping import ALERTING, OK, FlappingSpec, recent_flips
from watcher.incidents.model import RAISED, Event, Incident, State, fingerprint
from watcher.incidents.series import recorded
from watcher.rules.models import Rule
from watcher.rules.thresholds import severity_rank

NOT_ENOUGH_DATA = "not enough data"
STORE_ERROR = "store error"


def step(
    incident: Incident | None,
    finding: Finding,
    rule: Rule,
    now: datetime,
    repeat_interval: timedelta | None,
) -> tuple[Incident | None, list[Event]]:
    """The next snapshot of ``incident`` after ``finding`` (``None`` = inactive) and its events.

    ``repeat_interval`` is a default for ``rule.repeat_interval`` (the engine passes None: a route's
    repeat_interval is applied per group by the dispatcher, so only a rule's own asks for an
    UPDATE of one incident). Repeats count from
    ``incident.last_notified_at``, which the state store sets when it enqueues a notification.
    Returns the very same object when nothing changed (an OK finding on a resolved incident), so
    a caller may skip writing it.
    """
    if finding.rule != rule.name:
        raise ValueError(f"finding of rule {finding.rule!r} cannot step an incident of rule {rule.name!r}")
    if incident is None and finding.status is Status.OK:
        return None, []  # inactive stays inactive (no flap to count either): most steps of a tick
    if incident is not None and incident.fingerprint != fingerprint(rule.name, finding.group):
        raise ValueError(
            f"incident {incident.fingerprint} is not the incident of rule {rule.name!r} "
            f"group {dict(finding.group)!r}"
        )
    status, raised = _policy(finding.status, rule)
    updated: Incident | None
    if status is Status.ALERTING:
        updated, events = _alerting(incident, finding, rule, now, repeat_interval, raised)
    elif status is Status.OK:
        updated, events = _ok(incident, finding, rule, now)
    else:
        return _kept(incident, finding, now), []
    if status is not finding.status and updated is not None and updated is not incident:
        updated = updated.evolve(note=_note(_taken_as(finding.status, rule), finding.reason))
    if rule.flapping is None or not rule.flapping.enabled:
        return updated, events
    return _flap(incident, updated, events, status is Status.ALERTING, rule.flapping, rule.every, now)


def _policy(status: Status, rule: Rule) -> tuple[Status, State]:
    """What a finding counts as under the rule's ``on_nodata`` / ``on_error``, and the state an
    alerting one raises (firing, or the visible nodata / error)."""
    if status is Status.ALERTING or status is Status.OK:
        return status, State.FIRING  # most findings: no policy applies
    policy = rule.on_nodata if status is Status.NO_DATA else rule.on_error
    if policy == "keep":
        return status, State.FIRING
    if policy == "ok":
        return Status.OK, State.FIRING
    if policy == "alerting":
        return Status.ALERTING, State.FIRING
    return Status.ALERTING, State.NODATA if status is Status.NO_DATA else State.ERROR


def _taken_as(status: Status, rule: Rule) -> str:
    if status is Status.NO_DATA:
        return f"{NOT_ENOUGH_DATA} (on_nodata: {rule.on_nodata})"
    return f"{STORE_ERROR} (on_error: {rule.on_error})"


def _alerting(
    incident: Incident | None,
    finding: Finding,
    rule: Rule,
    now: datetime,
    route_repeat: timedelta | None,
    raised: State = State.FIRING,
) -> tuple[Incident, list[Event]]:
    level = finding.severity or rule.severity
    measured = _measured(finding, rule, now, incident) | {"last_alerting_at": now}
    if incident is None or incident.state is State.RESOLVED or incident.state is State.PENDING:
        measured |= _at_level(rule, finding.group, level)
    if incident is None or incident.state is State.RESOLVED:
        # A new episode: nothing of a resolved predecessor carries over (it is overwritten) but
        # the recent values of the signal, so a chart of the re-fire shows what came before.
        pending = Incident(
            fingerprint=fingerprint(rule.name, finding.group),
            rule=rule.name,
            group=dict(finding.group),
            state=State.PENDING,
            started_at=now,
            **measured,
        )
        return _fire_when_due(pending, rule, now, raised)
    if incident.state is State.PENDING:
        return _fire_when_due(incident.evolve(**measured), rule, now, raised)
    if incident.state is not raised:  # firing <-> nodata <-> error: the same episode, told as an update
        return incident.evolve(**measured, state=raised), [Event.UPDATE]
    if raised is State.FIRING:
        updated, changed = _leveled(incident.evolve(**measured), level, rule, now)
    else:  # no data and errors are no evidence of a level
        updated, changed = incident.evolve(**measured), False
    repeat = rule.repeat_interval if rule.repeat_interval is not None else route_repeat
    last = incident.last_notified_at
    if changed or (repeat and last is not None and now - last >= repeat):
        return updated, [Event.UPDATE]
    return updated, []


def _leveled(incident: Incident, level: str, rule: Rule, now: datetime) -> tuple[Incident, bool]:
    """A firing incident after an alerting evaluation at ``level``, and whether its severity
    changed: a new level becomes the severity once it held for ``for_`` (higher) or
    ``keep_firing_for`` (lower)."""
    if level == incident.severity:
        if not incident.next_severity and incident.next_severity_since is None:
            return incident, False  # nothing pending: no copy of the snapshot
        return incident.evolve(next_severity="", next_severity_since=None), False
    since = incident.next_severity_since if incident.next_severity == level else None
    since = since or now
    hold = rule.for_ if severity_rank(level) > severity_rank(incident.severity) else rule.keep_firing_for
    if now - since < hold:
        until = (since + hold).isoformat()
        note = f"{level} since {since.isoformat()}; becomes its severity at {until} if it holds"
        return incident.evolve(next_severity=level, next_severity_since=since, note=note), False
    changed = incident.evolve(severity_from=incident.severity, **_at_level(rule, incident.group, level))
    return changed, True


def _at_level(rule: Rule, group: Mapping[str, str], level: str) -> dict[str, Any]:
    """The fields that set an incident's severity (its ``severity`` label too)."""
    return {
        "severity": level,
        "labels": incident_labels(rule, group, level),
        "next_severity": "",
        "next_severity_since": None,
    }


def _fire_when_due(
    pending: Incident, rule: Rule, now: datetime, raised: State = State.FIRING
) -> tuple[Incident, list[Event]]:
    if now - pending.started_at >= rule.for_:
        return pending.evolve(state=raised, fired_at=now), [Event.FIRING]
    return pending, []


def _ok(
    incident: Incident | None, finding: Finding, rule: Rule, now: datetime
) -> tuple[Incident | None, list[Event]]:
    if incident is None or incident.state is State.RESOLVED:
        return incident, []
    if incident.state is State.PENDING:
        return None, []  # never fired, so nobody is told it stopped
    # Clearing is no evidence for another level: a severity change waiting to hold starts over.
    measured = _measured(finding, rule, now, incident) | {"next_severity": "", "next_severity_since": None}
    cleared_since = incident.last_alerting_at
    if rule.keep_firing_for and cleared_since is not None and now - cleared_since < rule.keep_firing_for:
        until = cleared_since + rule.keep_firing_for
        measured["note"] = f"cleared; keeps firing until {until.isoformat()} (keep_firing_for)"
        return incident.evolve(**measured), []
    return incident.evolve(**measured, state=State.RESOLVED, resolved_at=now), [Event.RESOLVED]


def _kept(incident: Incident | None, finding: Finding, now: datetime) -> Incident | None:
    if incident is None:
        return None
    prefix = NOT_ENOUGH_DATA if finding.status is Status.NO_DATA else STORE_ERROR
    return incident.evolve(note=_note(prefix, finding.reason), last_evaluated_at=now)


def retire(incident: Incident, now: datetime, reason: str) -> tuple[Incident | None, list[Event]]:
    """End an incident whose rule is gone (removed, disabled, or changed what it measures).

    A pending incident never fired, so it is dropped silently (None). A firing one resolves with
    ``reason`` as its note: the people told it fired are told it will not be watched any more,
    rather than waiting for a resolve that cannot come.
    """
    if incident.state is State.PENDING:
        return None, []
    if incident.state is State.RESOLVED:
        return incident, []
    ended = incident.evolve(state=State.RESOLVED, resolved_at=now, last_evaluated_at=now, note=reason)
    return ended, [Event.RESOLVED]


def _note(prefix: str, reason: str) -> str:
    """``prefix: reason``, without doubling a prefix the detector already wrote."""
    if not reason:
        return prefix
    if reason.startswith(prefix):
        return reason
    return f"{prefix}: {reason}"


def _measured(finding: Finding, rule: Rule, now: datetime, incident: Incident | None) -> dict[str, Any]:
    """What every evaluated finding refreshes: the latest numbers and the rule's current metadata
    (a reloaded rule's new labels apply to its open incidents), and the series of recent values
    that charts draw (``watcher.incidents.series``). The severity stays the incident's: only
    alerting evidence changes it (a reloaded rule's new ``severity`` as well)."""
    severity = incident.severity if incident is not None else finding.severity or rule.severity
    return {
        "value": finding.value,
        "threshold": finding.threshold,
        "details": recorded(finding.details, incident.details if incident else None, finding.value, now),
        "last_evaluated_at": now,
        "note": "",
        "labels": incident_labels(rule, finding.group, severity),
        "annotations": dict(rule.annotations),
        "severity_from": "",
        "flap_ended": False,
        "evidence": finding.evidence or _kept_evidence(incident),
    }


def _kept_evidence(incident: Incident | None) -> tuple[Mapping[str, Any], ...]:
    """An episode's evidence stays until an alerting window brings newer; a new one starts bare."""
    return () if incident is None or incident.state is State.RESOLVED else incident.evidence


def incident_labels(rule: Rule, group: Mapping[str, str], severity: str | None = None) -> dict[str, str]:
    """The labels routing sees: the group's labels plus the rule's, and ``severity`` the incident's
    (the rule's when not given). On a name clash the rule's label wins, so a log field called
    ``severity`` or ``rule`` cannot reroute an incident."""
    labels = {**dict(group), **rule.all_labels()}
    if severity is not None and "severity" not in rule.labels:
        labels["severity"] = severity
    return labels


# --------------------------------------------------------------------------- flapping


def _flap(
    before: Incident | None,
    updated: Incident | None,
    events: list[Event],
    alerting: bool,
    spec: FlappingSpec,
    every: timedelta,
    now: datetime,
) -> tuple[Incident | None, list[Event]]:
    """``updated`` and its events once flapping is judged (``watcher.incidents.flapping``): the
    start is one notification with the count of changes, the end another; in between the incident
    stays raised and nothing is told."""
    status = ALERTING if alerting else OK
    old = before.flips if before is not None else ()
    flips = recent_flips(old, before.last_status if before else "", status, spec, every, now)
    if updated is None:  # a pending incident cleared: remembered, resolved unfired, while it may flap
        if before is None or not flips:
            return None, events
        note = "cleared before it fired; kept while it may flap"
        updated = before.evolve(state=State.RESOLVED, resolved_at=now, last_evaluated_at=now, note=note)
    if (updated.flips, updated.last_status) != (flips, status):  # else the very same snapshot
        updated = updated.evolve(flips=flips, last_status=status)
    flapping = before is not None and before.flapping
    if not flapping and len(flips) >= spec.changes:
        return _flap_started(before, updated, spec, now)
    if flapping and len(flips) < spec.settle_below:
        ended = updated.evolve(flapping=False, flap_ended=True, note="flapping ended")
        return ended, [Event.RESOLVED if ended.state is State.RESOLVED else Event.UPDATE]
    if flapping and before is not None:
        held = updated if updated.state in RAISED else _reraised(updated, before.state)
        return held.evolve(note=_flapping_note(flips, spec)), []
    return updated, events


def _flap_started(
    before: Incident | None, updated: Incident, spec: FlappingSpec, now: datetime
) -> tuple[Incident, list[Event]]:
    told = before is not None and before.state in RAISED
    if told and before is not None:
        raised = updated if updated.state in RAISED else _reraised(updated, before.state)
    elif updated.state in RAISED:
        raised = updated
    else:
        raised = updated.evolve(state=State.FIRING, fired_at=now, resolved_at=None)
    note = _flapping_note(updated.flips, spec)
    return raised.evolve(flapping=True, note=note), [Event.UPDATE if told else Event.FIRING]


def _reraised(incident: Incident, state: State) -> Incident:
    return incident.evolve(state=state, resolved_at=None)


def _flapping_note(flips: tuple[datetime, ...], spec: FlappingSpec) -> str:
    return f"flapping: {len(flips)} status changes in the last {spec.window} evaluations"

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
at pending, so ``for_`` damps re-fires too. Nothing else is remembered across episodes; that
keeps the machine a function of one snapshot. This is the only flap damping: the dispatcher
(``watcher.routing.dispatch``) tells every episode, even a resolve and re-fire between two
flushes of the incident's group.

A missing measurement (not enough data, a store error) is never evidence: it neither fires nor
resolves, it only explains itself in ``note``.

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
from watcher.incidents.model import Event, Incident, State, fingerprint
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
    if incident is not None and incident.fingerprint != fingerprint(rule.name, finding.group):
        raise ValueError(
            f"incident {incident.fingerprint} is not the incident of rule {rule.name!r} "
            f"group {dict(finding.group)!r}"
        )
    if finding.status is Status.ALERTING:
        return _alerting(incident, finding, rule, now, repeat_interval)
    if finding.status is Status.OK:
        return _ok(incident, finding, rule, now)
    return _kept(incident, finding, now), []


def _alerting(
    incident: Incident | None,
    finding: Finding,
    rule: Rule,
    now: datetime,
    route_repeat: timedelta | None,
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
        return _fire_when_due(pending, rule, now)
    if incident.state is State.PENDING:
        return _fire_when_due(incident.evolve(**measured), rule, now)
    updated, changed = _leveled(incident.evolve(**measured), level, rule, now)
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


def _fire_when_due(pending: Incident, rule: Rule, now: datetime) -> tuple[Incident, list[Event]]:
    if now - pending.started_at >= rule.for_:
        return pending.evolve(state=State.FIRING, fired_at=now), [Event.FIRING]
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
    }


def incident_labels(rule: Rule, group: Mapping[str, str], severity: str | None = None) -> dict[str, str]:
    """The labels routing sees: the group's labels plus the rule's, and ``severity`` the incident's
    (the rule's when not given). On a name clash the rule's label wins, so a log field called
    ``severity`` or ``rule`` cannot reroute an incident."""
    labels = {**dict(group), **rule.all_labels()}
    if severity is not None and "severity" not in rule.labels:
        labels["severity"] = severity
    return labels

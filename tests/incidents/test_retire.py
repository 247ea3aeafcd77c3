"""``retire``: ending the incidents of a rule that is gone (removed, disabled, re-targeted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.detect.base import Finding, Status
from watcher.incidents.machine import retire, step
from watcher.incidents.model import Event, Incident, State
from watcher.rules.models import Rule

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
REASON = "rule api-5xx was removed from rules/api.yaml"


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"name": "api-5xx", "source": "ml-api", "threshold": {"above": 0.05}}
    return Rule.model_validate(base | fields)


def alerting(status: Status = Status.ALERTING) -> Finding:
    return Finding("api-5xx", {"model_version": "v3"}, status, value=0.2, threshold=0.05)


def stepped(rule: Rule, *findings: Finding) -> Incident:
    """The incident after ``findings``, one a minute from T0."""
    incident: Incident | None = None
    for minute, finding in enumerate(findings):
        incident, _ = step(incident, finding, rule, T0 + minute * MIN, None)
    assert incident is not None
    return incident


def test_a_pending_incident_is_dropped_silently() -> None:
    pending = stepped(make_rule(**{"for": "5m"}), alerting())
    assert pending.state is State.PENDING
    assert retire(pending, T0 + MIN, REASON) == (None, [])


def test_a_firing_incident_resolves_saying_why() -> None:
    firing = stepped(make_rule(), alerting(), alerting())
    assert firing.state is State.FIRING
    now = T0 + 10 * MIN
    ended, events = retire(firing, now, REASON)
    assert events == [Event.RESOLVED]
    assert ended == firing.evolve(state=State.RESOLVED, resolved_at=now, last_evaluated_at=now, note=REASON)
    assert (ended.fingerprint, ended.started_at, ended.fired_at) == (
        firing.fingerprint,
        firing.started_at,
        firing.fired_at,
    )


def test_a_firing_incident_held_by_keep_firing_for_resolves_at_once() -> None:
    held = stepped(make_rule(keep_firing_for="1h"), alerting(), alerting(Status.OK))
    assert held.state is State.FIRING
    assert held.note.startswith("cleared; keeps firing until")
    ended, events = retire(held, T0 + 2 * MIN, REASON)
    assert ended is not None
    assert (ended.state, ended.note, events) == (State.RESOLVED, REASON, [Event.RESOLVED])


def test_a_resolved_incident_is_left_as_it_is() -> None:
    resolved = stepped(make_rule(), alerting(), alerting(Status.OK))
    assert resolved.state is State.RESOLVED
    ended, events = retire(resolved, T0 + 10 * MIN, REASON)
    assert ended is resolved
    assert events == []

"""The incident state machine, transition by transition, on a hand-driven clock."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.detect.base import Finding, Status
from watcher.incidents.machine import step
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.rules.models import Rule

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GROUP = {"model_version": "v3"}
MIN = timedelta(minutes=1)


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {
        "name": "api-5xx",
        "source": "ml-api",
        "threshold": {"above": 0.05},
        "severity": "critical",
        "labels": {"team": "ml-platform"},
        "annotations": {"summary": "5xx rate {{ value | percent }}"},
    }
    return Rule.model_validate(base | fields)


def finding(status: Status, value: float | None = 0.2, reason: str = "", **group: str) -> Finding:
    return Finding("api-5xx", group or GROUP, status, value=value, threshold=0.05, reason=reason)


ALERTING = Status.ALERTING
OK = Status.OK


def run(rule: Rule, *steps: tuple[int, Finding], repeat: timedelta | None = None) -> list[Any]:
    """Feed findings at minute offsets; returns [(state or None, events)] after each."""
    incident: Incident | None = None
    trace = []
    for minute, seen in steps:
        incident, events = step(incident, seen, rule, T0 + minute * MIN, repeat)
        trace.append((incident.state if incident else None, events))
    return trace


def test_without_for_an_alerting_group_fires_at_once_with_the_rules_metadata() -> None:
    incident, events = step(None, finding(ALERTING), make_rule(), T0, None)
    assert events == [Event.FIRING]
    assert incident is not None
    assert incident.state is State.FIRING
    assert incident.fingerprint == fingerprint("api-5xx", GROUP)
    assert (incident.started_at, incident.fired_at, incident.last_alerting_at) == (T0, T0, T0)
    assert incident.labels == {
        "model_version": "v3",
        "rule": "api-5xx",
        "severity": "critical",
        "source": "ml-api",
        "team": "ml-platform",
    }
    assert incident.annotations == {"summary": "5xx rate {{ value | percent }}"}  # rendered later
    assert (incident.severity, incident.value, incident.threshold) == ("critical", 0.2, 0.05)


def test_pending_fires_only_after_for_has_elapsed() -> None:
    rule = make_rule(**{"for": "2m"})
    trace = run(
        rule, (0, finding(ALERTING)), (1, finding(ALERTING)), (2, finding(ALERTING)), (3, finding(ALERTING))
    )
    assert trace == [
        (State.PENDING, []),
        (State.PENDING, []),
        (State.FIRING, [Event.FIRING]),
        (State.FIRING, []),
    ]


def test_fired_incident_remembers_when_it_started_pending() -> None:
    rule = make_rule(**{"for": "2m"})
    pending, _ = step(None, finding(ALERTING), rule, T0, None)
    firing, _ = step(pending, finding(ALERTING), rule, T0 + 2 * MIN, None)
    assert firing is not None
    assert (firing.started_at, firing.fired_at) == (T0, T0 + 2 * MIN)


def test_pending_that_clears_goes_back_to_inactive_silently() -> None:
    trace = run(make_rule(**{"for": "5m", "flapping": False}), (0, finding(ALERTING)), (1, finding(OK, 0.01)))
    assert trace == [(State.PENDING, []), (None, [])]


def test_firing_that_clears_resolves() -> None:
    rule = make_rule()
    firing, _ = step(None, finding(ALERTING), rule, T0, None)
    resolved, events = step(firing, finding(OK, 0.01), rule, T0 + MIN, None)
    assert events == [Event.RESOLVED]
    assert resolved is not None
    assert (resolved.state, resolved.resolved_at, resolved.value) == (State.RESOLVED, T0 + MIN, 0.01)
    assert resolved.fired_at == T0


def test_keep_firing_for_holds_a_cleared_incident_until_it_has_been_clear_that_long() -> None:
    rule = make_rule(keep_firing_for="5m")
    trace = run(rule, (0, finding(ALERTING)), (1, finding(OK)), (4, finding(OK)), (5, finding(OK)))
    assert trace == [
        (State.FIRING, [Event.FIRING]),
        (State.FIRING, []),
        (State.FIRING, []),
        (State.RESOLVED, [Event.RESOLVED]),
    ]


def test_keep_firing_for_restarts_when_it_alerts_again() -> None:
    rule = make_rule(keep_firing_for="5m")
    trace = run(rule, (0, finding(ALERTING)), (3, finding(OK)), (4, finding(ALERTING)), (8, finding(OK)))
    assert [state for state, _ in trace] == [State.FIRING] * 4


def test_kept_incident_explains_itself() -> None:
    rule = make_rule(keep_firing_for="5m")
    firing, _ = step(None, finding(ALERTING), rule, T0, None)
    kept, _ = step(firing, finding(OK), rule, T0 + MIN, None)
    assert kept is not None
    assert kept.note == "cleared; keeps firing until 2026-01-05T09:05:00+00:00 (keep_firing_for)"


@pytest.mark.parametrize(
    ("rule_repeat", "route_repeat", "updates_at"),
    [
        (None, timedelta(hours=1), [60, 120]),
        ("10m", timedelta(hours=1), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]),
        (None, None, []),
        ("0s", timedelta(hours=1), []),
    ],
)
def test_still_firing_incident_is_repeated_every_repeat_interval(
    rule_repeat: str | None, route_repeat: timedelta | None, updates_at: list[int]
) -> None:
    rule = make_rule(repeat_interval=rule_repeat)
    incident, _ = step(None, finding(ALERTING), rule, T0, route_repeat)
    assert incident is not None
    incident = incident.evolve(last_notified_at=T0)
    updates = []
    for minute in range(1, 121):
        now = T0 + minute * MIN
        incident, events = step(incident, finding(ALERTING), rule, now, route_repeat)
        assert incident is not None
        if events:
            assert events == [Event.UPDATE]
            updates.append(minute)
            incident = incident.evolve(last_notified_at=now)  # what the state store does on enqueue
    assert updates == updates_at


def test_firing_incident_never_notified_is_not_repeated() -> None:
    rule = make_rule(repeat_interval="1m")
    firing, _ = step(None, finding(ALERTING), rule, T0, None)
    again, events = step(firing, finding(ALERTING), rule, T0 + 10 * MIN, None)
    assert (again is not None, events) == (True, [])


@pytest.mark.parametrize(
    ("status", "reason", "note"),
    [
        (Status.NO_DATA, "not enough data: 12 < min_events 200", "not enough data: 12 < min_events 200"),
        (Status.NO_DATA, "12 < min_events 200", "not enough data: 12 < min_events 200"),
        (Status.NO_DATA, "", "not enough data"),
        (Status.ERROR, "connection refused", "store error: connection refused"),
        (Status.ERROR, "store error: timed out", "store error: timed out"),
        (Status.ERROR, "", "store error"),
    ],
)
@pytest.mark.parametrize("state", [State.PENDING, State.FIRING, State.RESOLVED])
def test_missing_measurement_keeps_the_state_and_says_why(
    status: Status, reason: str, note: str, state: State
) -> None:
    before = Incident(
        fingerprint=fingerprint("api-5xx", GROUP),
        rule="api-5xx",
        group=GROUP,
        labels={},
        annotations={},
        severity="critical",
        state=state,
        value=0.2,
        threshold=0.05,
        started_at=T0,
        last_alerting_at=T0,
    )
    after, events = step(before, finding(status, None, reason), make_rule(), T0 + 30 * MIN, None)
    assert events == []
    assert after == before.evolve(note=note, last_evaluated_at=T0 + 30 * MIN)


@pytest.mark.parametrize("status", [Status.NO_DATA, Status.ERROR])
def test_missing_measurement_on_an_inactive_group_opens_nothing(status: Status) -> None:
    assert step(None, finding(status, None), make_rule(), T0, None) == (None, [])


def test_pending_keeps_counting_through_missing_data_and_fires_when_alerting_again() -> None:
    rule = make_rule(**{"for": "2m"})
    trace = run(rule, (0, finding(ALERTING)), (1, finding(Status.NO_DATA)), (3, finding(ALERTING)))
    assert trace == [(State.PENDING, []), (State.PENDING, []), (State.FIRING, [Event.FIRING])]


def test_alerting_again_clears_the_note() -> None:
    rule = make_rule()
    firing, _ = step(None, finding(ALERTING), rule, T0, None)
    noted, _ = step(firing, finding(Status.ERROR, None, "timeout"), rule, T0 + MIN, None)
    again, _ = step(noted, finding(ALERTING), rule, T0 + 2 * MIN, None)
    assert (noted and noted.note, again and again.note) == ("store error: timeout", "")


def test_ok_on_a_resolved_incident_returns_the_same_snapshot() -> None:
    rule = make_rule()
    firing, _ = step(None, finding(ALERTING), rule, T0, None)
    resolved, _ = step(firing, finding(OK), rule, T0 + MIN, None)
    same, events = step(resolved, finding(OK), rule, T0 + 2 * MIN, None)
    assert same is resolved
    assert events == []


def test_ok_on_an_inactive_group_stays_inactive() -> None:
    assert step(None, finding(OK), make_rule(), T0, None) == (None, [])


def test_resolved_incident_that_alerts_again_starts_a_new_episode_through_for() -> None:
    rule = make_rule(**{"for": "2m"})
    trace = run(
        rule,
        *[(minute, finding(ALERTING)) for minute in range(3)],
        (3, finding(OK)),
        (4, finding(ALERTING)),
        (6, finding(ALERTING)),
    )
    assert trace[2:] == [
        (State.FIRING, [Event.FIRING]),
        (State.RESOLVED, [Event.RESOLVED]),
        (State.PENDING, []),
        (State.FIRING, [Event.FIRING]),
    ]


def test_new_episode_forgets_the_previous_one() -> None:
    rule = make_rule()
    firing, _ = step(None, finding(ALERTING), rule, T0, None)
    assert firing is not None
    resolved, _ = step(firing.evolve(last_notified_at=T0), finding(OK), rule, T0 + MIN, None)
    again, _ = step(resolved, finding(ALERTING), rule, T0 + 9 * MIN, None)
    assert again is not None
    assert (again.started_at, again.fired_at, again.resolved_at, again.last_notified_at) == (
        T0 + 9 * MIN,
        T0 + 9 * MIN,
        None,
        None,
    )


def test_a_group_label_cannot_override_the_rules_labels() -> None:
    incident, _ = step(None, finding(ALERTING, severity="debug", host="a"), make_rule(), T0, None)
    assert incident is not None
    assert incident.labels["severity"] == "critical"
    assert incident.labels["host"] == "a"
    assert incident.group == {"severity": "debug", "host": "a"}


def test_reloaded_rule_metadata_applies_to_the_open_incident() -> None:
    firing, _ = step(None, finding(ALERTING), make_rule(), T0, None)
    updated, _ = step(firing, finding(ALERTING), make_rule(severity="warning", labels={}), T0 + MIN, None)
    assert updated is not None
    assert (updated.severity, updated.labels.get("team")) == ("warning", None)


def test_finding_of_another_rule_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^finding of rule 'api-5xx' cannot step an incident of rule 'other'$"
    ):
        step(None, finding(ALERTING), make_rule(name="other"), T0, None)


def test_incident_of_another_group_is_refused() -> None:
    firing, _ = step(None, finding(ALERTING, model_version="v2"), make_rule(), T0, None)
    assert firing is not None
    message = (
        f"incident {firing.fingerprint} is not the incident of rule 'api-5xx' group {{'model_version': 'v3'}}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        step(firing, finding(ALERTING), make_rule(), T0, None)


@given(
    statuses=st.lists(st.sampled_from(list(Status)), max_size=40),
    for_minutes=st.integers(0, 3),
    keep_minutes=st.integers(0, 3),
)
def test_any_sequence_alternates_firing_and_resolved(
    statuses: list[Status], for_minutes: int, keep_minutes: int
) -> None:
    rule = make_rule(**{"for": f"{for_minutes}m", "keep_firing_for": f"{keep_minutes}m"})
    incident: Incident | None = None
    told = []
    for minute, status in enumerate(statuses):
        incident, events = step(incident, finding(status), rule, T0 + minute * MIN, timedelta(minutes=5))
        if status in (Status.NO_DATA, Status.ERROR):
            assert events == []
        told += [event for event in events if event is not Event.UPDATE]
        if incident is not None:
            assert (incident.state is State.FIRING) == (told[-1:] == [Event.FIRING])
    assert told == [Event.FIRING, Event.RESOLVED] * (len(told) // 2) + [Event.FIRING] * (len(told) % 2)


# --------------------------------------------------------------------------- severity levels


def at_level(severity: str, value: float = 0.2) -> Finding:
    return Finding("api-5xx", GROUP, ALERTING, value=value, threshold=0.05, severity=severity)


def levels(rule: Rule, *steps: tuple[int, Finding]) -> list[tuple[str, list[Event]]]:
    """Feed findings at minute offsets; returns [(severity, events)] after each."""
    incident: Incident | None = None
    trace = []
    for minute, seen in steps:
        incident, events = step(incident, seen, rule, T0 + minute * MIN, None)
        assert incident is not None
        trace.append((incident.severity, events))
    return trace


def test_an_escalation_holds_for_for_then_is_one_update_and_the_severity_label_follows() -> None:
    rule = make_rule(**{"for": "2m"})
    incident: Incident | None = None
    for minute in range(3):
        incident, _ = step(incident, at_level("warning"), rule, T0 + minute * MIN, None)
    assert incident is not None
    assert incident.severity == "warning"
    events = []
    for minute in range(3, 6):
        incident, seen = step(incident, at_level("critical"), rule, T0 + minute * MIN, None)
        events.append(seen)
    assert events == [[], [], [Event.UPDATE]]
    assert incident is not None
    assert (incident.severity, incident.severity_from, incident.labels["severity"]) == (
        "critical",
        "warning",
        "critical",
    )
    incident, seen = step(incident, at_level("critical"), rule, T0 + 6 * MIN, None)
    assert seen == []
    assert incident is not None
    assert incident.severity_from == ""


def test_a_de_escalation_holds_for_keep_firing_for() -> None:
    rule = make_rule(keep_firing_for="2m")
    trace = levels(
        rule,
        (0, at_level("critical")),
        (1, at_level("warning")),
        (2, at_level("warning")),
        (3, at_level("warning")),
    )
    assert trace == [
        ("critical", [Event.FIRING]),
        ("critical", []),
        ("critical", []),
        ("warning", [Event.UPDATE]),
    ]


def test_without_for_a_level_change_is_told_at_once_each_way() -> None:
    trace = levels(make_rule(), (0, at_level("warning")), (1, at_level("critical")), (2, at_level("warning")))
    assert trace == [("warning", [Event.FIRING]), ("critical", [Event.UPDATE]), ("warning", [Event.UPDATE])]


def test_a_level_that_flaps_never_changes_the_severity() -> None:
    rule = make_rule(**{"for": "2m"}, keep_firing_for="2m")
    fired = [(minute, at_level("warning")) for minute in range(3)]
    flapping = [(minute, at_level("critical" if minute % 2 else "warning")) for minute in range(3, 13)]
    trace = levels(rule, *fired, *flapping)
    assert {severity for severity, _ in trace} == {"warning"}
    assert [events for _, events in trace[2:]] == [[Event.FIRING], *([[]] * 10)]


def test_a_pending_incident_fires_at_the_level_of_the_evaluation_that_fires_it() -> None:
    rule = make_rule(**{"for": "1m"})
    trace = levels(rule, (0, at_level("warning")), (1, at_level("critical")))
    assert trace == [("warning", []), ("critical", [Event.FIRING])]


def test_clearing_inside_keep_firing_for_keeps_the_severity_and_restarts_a_change() -> None:
    rule = make_rule(**{"for": "2m"}, keep_firing_for="5m")
    fired = [(minute, at_level("warning")) for minute in range(3)]
    cleared = [(3, at_level("critical")), (4, finding(OK, 0.01))]
    again = [(minute, at_level("critical")) for minute in range(5, 8)]
    trace = levels(rule, *fired, *cleared, *again)
    assert [severity for severity, _ in trace] == ["warning"] * 7 + ["critical"]
    assert trace[-1][1] == [Event.UPDATE]

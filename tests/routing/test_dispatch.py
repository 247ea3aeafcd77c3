"""The dispatcher on a real state file: grouping, group timers, resolved messages, muting, episodes
found after the fact."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StateAt
from watcher.config import Config, InhibitRule, Route
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.dispatch import Dispatch, Dispatcher
from watcher.routing.groups import load_groups
from watcher.routing.matchers import Matcher
from watcher.routing.silences import SilenceStore, new_silence

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
ROUTE = Route.model_validate(
    {
        "receiver": "slack",
        "group_by": ["rule"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "1h",
        "routes": [{"matchers": ["severity=critical"], "receiver": "pager", "continue": True}],
    }
)


@dataclass(frozen=True)
class Change:
    incident: Incident
    event: Event
    at: datetime


def incident(model: str, at: datetime = T0, severity: str = "warning", **fields: Any) -> Incident:
    group = {"model_version": model}
    values: dict[str, Any] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", "severity": severity, "model_version": model},
        "annotations": {},
        "severity": severity,
        "state": State.FIRING,
        "value": 0.2,
        "threshold": 0.05,
        "started_at": at,
        "fired_at": at,
    }
    return Incident(**(values | fields))


def fired(model: str, at: datetime = T0, **fields: Any) -> Change:
    return Change(incident(model, at, **fields), Event.FIRING, at)


def resolved(model: str, started: datetime, at: datetime, **fields: Any) -> Change:
    done = incident(model, started, state=State.RESOLVED, resolved_at=at, **fields)
    return Change(done, Event.RESOLVED, at)


class Run:
    """A dispatcher whose plans are committed, as the engine does."""

    def __init__(self, state: StateStore, dispatcher: Dispatcher) -> None:
        self.state, self.dispatcher = state, dispatcher
        self.sent: list[Notification] = []

    def step(self, now: datetime, *changes: Change) -> list[Notification]:
        for change in changes:  # the engine commits incidents with the plan
            self.state.commit([change.incident])
        plan = self.dispatcher.plan(changes, now)
        self.state.commit(notifications=plan.notifications, writes=[plan.write])
        self.sent += plan.notifications
        return plan.notifications


@pytest.fixture
def state(state_at: StateAt) -> Iterator[StateStore]:
    """Groups on each backend (tests/conftest.py: SQLite, PostgreSQL)."""
    with state_at.open() as opened:
        yield opened


@pytest.fixture
def run(state: StateStore) -> Run:
    return Run(state, Dispatcher(state, ROUTE))


def summary(notifications: Sequence[Notification]) -> list[tuple[str, str, list[str]]]:
    return [
        (n.receiver, n.event.value, [i.group["model_version"] for i in n.incidents]) for n in notifications
    ]


def test_a_group_waits_group_wait_then_sends_one_notification_listing_its_incidents(run: Run) -> None:
    assert run.step(T0, fired("v1")) == []
    assert run.step(T0 + 10 * SEC, fired("v2", T0 + 10 * SEC)) == []
    sent = run.step(T0 + 30 * SEC)
    assert summary(sent) == [("slack", "firing", ["v1", "v2"])]
    assert sent[0].group_labels == {"rule": "api-5xx"}


def test_new_incidents_join_at_the_next_group_interval_as_an_update_in_the_same_thread(run: Run) -> None:
    run.step(T0, fired("v1"))
    (first,) = run.step(T0 + 30 * SEC)
    assert run.step(T0 + 60 * SEC, fired("v2", T0 + 60 * SEC)) == []
    assert run.step(T0 + 5 * 60 * SEC + 29 * SEC) == []
    (update,) = run.step(T0 + 5 * 60 * SEC + 30 * SEC)
    assert summary([update]) == [("slack", "update", ["v1", "v2"])]
    assert update.thread_key == first.thread_key


def test_nothing_is_resent_until_the_repeat_interval(run: Run) -> None:
    run.step(T0, fired("v1"))
    run.step(T0 + 30 * SEC)
    for minutes in range(5, 60, 5):
        assert run.step(T0 + 30 * SEC + minutes * 60 * SEC) == []
    assert summary(run.step(T0 + 30 * SEC + 60 * 60 * SEC)) == [("slack", "update", ["v1"])]


def test_resolved_incidents_get_a_resolved_notification_and_the_group_ends(
    run: Run, state: StateStore
) -> None:
    run.step(T0, fired("v1"), fired("v2"))
    run.step(T0 + 30 * SEC)
    run.step(T0 + 60 * SEC, resolved("v1", T0, T0 + 60 * SEC))
    (told,) = run.step(T0 + 5 * 60 * SEC + 30 * SEC)
    assert summary([told]) == [("slack", "resolved", ["v1"])]
    run.step(T0 + 6 * 60 * SEC, resolved("v2", T0, T0 + 6 * 60 * SEC))
    (last,) = run.step(T0 + 10 * 60 * SEC + 30 * SEC)
    assert summary([last]) == [("slack", "resolved", ["v2"])]
    with state.reading() as db:
        assert db.execute("SELECT count(*) FROM dispatch_groups").fetchone() == (0,)
    # The next incident starts a new group: group_wait again, and a new thread.
    later = T0 + 20 * 60 * SEC
    assert run.step(later, fired("v3", later)) == []
    (again,) = run.step(later + 30 * SEC)
    assert (again.event, again.thread_key != last.thread_key) == (Event.FIRING, True)


def test_an_incident_that_resolves_before_its_group_is_flushed_is_still_told(run: Run) -> None:
    run.step(T0, fired("v1"))
    run.step(T0 + 10 * SEC, resolved("v1", T0, T0 + 10 * SEC))
    assert summary(run.step(T0 + 30 * SEC)) == [("slack", "resolved", ["v1"])]


def test_each_route_an_incident_reaches_has_its_own_group(state: StateStore) -> None:
    tree = ROUTE.model_copy(
        update={"routes": [*ROUTE.routes, Route(receiver="ml", matchers=["rule=~api-.*"])]}
    )
    run = Run(state, Dispatcher(state, tree))
    run.step(T0, fired("v1", severity="critical"), fired("v2"))
    sent = run.step(T0 + 30 * SEC)
    assert sorted(summary(sent)) == [("ml", "firing", ["v1", "v2"]), ("pager", "firing", ["v1"])]


def test_catch_up_transitions_older_than_group_wait_are_flushed_at_once(run: Run) -> None:
    sent = run.step(T0 + 10 * 60 * SEC, fired("v1", T0))
    assert summary(sent) == [("slack", "firing", ["v1"])]


def test_a_rerun_after_a_crash_produces_the_same_notification_ids(state: StateStore, tmp_path: Path) -> None:
    dispatcher = Dispatcher(state, ROUTE)
    state.commit([incident("v1")])
    first = dispatcher.plan([fired("v1")], T0 + 31 * SEC)  # the process dies before committing
    again = dispatcher.plan([fired("v1")], T0 + 45 * SEC)
    assert [n.id for n in first.notifications] == [n.id for n in again.notifications]
    state.commit(notifications=again.notifications, writes=[again.write])
    state.commit(notifications=first.notifications)  # enqueuing the same id again is ignored
    assert state.outbox_depth() == 1


MIN = 60 * SEC


def told(notifications: Sequence[Notification]) -> list[tuple[str, list[tuple[str, int, bool]]]]:
    """Each notification's event and its incidents as (model, minute the episode started, found late)."""
    return [
        (
            n.event.value,
            [(i.group["model_version"], (i.started_at - T0) // MIN, i.found_late) for i in n.incidents],
        )
        for n in notifications
    ]


def episodes(model: str, *spans: tuple[int, int]) -> list[Change]:
    """An incident's episodes as the engine reports them, each firing at its first minute and
    resolving at its second."""
    changes = []
    for first, last in spans:
        changes += [fired(model, T0 + first * MIN), resolved(model, T0 + first * MIN, T0 + last * MIN)]
    return changes


def test_three_episodes_found_after_the_fact_are_three_messages_in_order(run: Run) -> None:
    # Catch-up after a stop: three bursts of v1 and one of v2, all over before the first flush.
    changes = [*episodes("v1", (0, 1), (2, 3), (4, 5)), *episodes("v2", (1, 2))]
    sent = run.step(T0 + 10 * MIN, *changes)
    assert told(sent) == [
        ("resolved", [("v1", 0, True), ("v2", 1, True)]),
        ("resolved", [("v1", 2, True)]),
        ("resolved", [("v1", 4, True)]),
    ]
    spans = [
        ((i.fired_at - T0) // MIN, (i.resolved_at - T0) // MIN)
        for n in sent
        for i in n.incidents
        if i.resolved_at
    ]
    assert spans == [(0, 1), (1, 2), (2, 3), (4, 5)]  # each with its own times
    assert len({n.id for n in sent}) == 3
    assert {n.thread_key for n in sent} == {sent[0].thread_key}  # one group, one conversation


def test_an_episode_found_late_is_told_before_the_firing_of_the_next(run: Run) -> None:
    sent = run.step(T0 + 10 * MIN, *episodes("v1", (0, 1)), fired("v1", T0 + 2 * MIN))
    assert told(sent) == [("resolved", [("v1", 0, True)]), ("firing", [("v1", 2, False)])]


def test_a_told_episode_that_resolved_while_a_new_one_fired_gets_its_resolved(run: Run) -> None:
    run.step(T0, fired("v1"))
    assert told(run.step(T0 + 30 * SEC)) == [("firing", [("v1", 0, False)])]
    run.step(T0 + MIN, resolved("v1", T0, T0 + MIN))
    run.step(T0 + 2 * MIN, fired("v1", T0 + 2 * MIN))
    sent = run.step(T0 + 5 * MIN + 30 * SEC)
    assert told(sent) == [("resolved", [("v1", 0, False)]), ("update", [("v1", 2, False)])]
    run.step(T0 + 7 * MIN, resolved("v1", T0 + 2 * MIN, T0 + 7 * MIN))
    assert told(run.step(T0 + 10 * MIN + 30 * SEC)) == [("resolved", [("v1", 2, False)])]


def test_an_episode_told_firing_is_never_found_late_even_after_an_update(run: Run) -> None:
    run.step(T0, fired("v1"))
    run.step(T0 + 30 * SEC)
    again = Change(incident("v1"), Event.UPDATE, T0 + 2 * MIN)  # the rule's own repeat_interval
    run.step(T0 + 2 * MIN, again)
    run.step(T0 + 3 * MIN, resolved("v1", T0, T0 + 3 * MIN))
    assert told(run.step(T0 + 5 * MIN + 30 * SEC)) == [("resolved", [("v1", 0, False)])]


def test_a_replanned_catch_up_flush_has_the_same_ids(state: StateStore) -> None:
    dispatcher = Dispatcher(state, ROUTE)
    changes = episodes("v1", (0, 1), (2, 3), (4, 5))
    state.commit([change.incident for change in changes])
    first = dispatcher.plan(changes, T0 + 10 * MIN)  # the process dies before committing
    again = dispatcher.plan(changes, T0 + 10 * MIN + 15 * SEC)
    assert [n.id for n in first.notifications] == [n.id for n in again.notifications]
    state.commit(notifications=again.notifications, writes=[again.write])
    state.commit(notifications=first.notifications)
    assert state.outbox_depth() == 3


def test_a_silenced_incident_is_tracked_and_notified_when_the_silence_ends(
    run: Run, state: StateStore
) -> None:
    silences = SilenceStore(state)
    silence = new_silence([Matcher.parse("model_version=v2")], T0, T0 + 10 * 60 * SEC, "ann", "deploy", T0)
    silences.add(silence)
    run.step(T0, fired("v1"), fired("v2"))
    assert summary(run.step(T0 + 30 * SEC)) == [("slack", "firing", ["v1"])]
    silences.expire(silence.id, T0 + 2 * 60 * SEC)
    assert summary(run.step(T0 + 5 * 60 * SEC + 30 * SEC)) == [("slack", "update", ["v1", "v2"])]


def test_an_incident_resolving_while_silenced_is_not_told(run: Run, state: StateStore) -> None:
    silence = new_silence([Matcher.parse("model_version=~v[12]")], T0, T0 + 3600 * SEC, "ann", "x", T0)
    SilenceStore(state).add(silence)
    run.step(T0, fired("v1"))
    assert run.step(T0 + 30 * SEC) == []
    run.step(T0 + 60 * SEC, resolved("v1", T0, T0 + 60 * SEC))
    assert run.step(T0 + 5 * 60 * SEC + 30 * SEC) == []


def test_inhibited_incidents_are_notified_once_the_source_resolves(state: StateStore) -> None:
    rule = InhibitRule.model_validate({"source": {"severity": "critical"}, "target": ["severity=warning"]})
    run = Run(state, Dispatcher(state, Route(receiver="slack", group_by=["..."]), [rule]))
    run.step(T0, fired("v1", severity="critical"), fired("v2"))
    assert summary(run.step(T0 + 30 * SEC)) == [("slack", "firing", ["v1"])]
    run.step(T0 + 60 * SEC, resolved("v1", T0, T0 + 60 * SEC, severity="critical"))
    sent = run.step(T0 + 5 * 60 * SEC + 30 * SEC)
    assert sorted(summary(sent)) == [("slack", "firing", ["v2"]), ("slack", "resolved", ["v1"])]


def test_flush_between_ticks_commits_and_is_cheap_when_nothing_is_due(state: StateStore) -> None:
    dispatcher = Dispatcher(state, ROUTE)
    state.commit([incident("v1")])
    plan = dispatcher.plan([fired("v1")], T0)
    state.commit(writes=[plan.write])
    assert dispatcher.flush(T0 + 29 * SEC) == []
    (sent,) = dispatcher.flush(T0 + 30 * SEC)
    assert state.last_notification(incident("v1").fingerprint) is not None
    assert sent.incidents[0].value == 0.2
    assert dispatcher.flush(T0 + 31 * SEC) == []


def test_meta_alerts_avoid_the_receiver_they_are_about(state: StateStore) -> None:
    meta = incident("x").evolve(rule="watcher:receiver-dead", group={"receiver": "slack"})
    assert Dispatcher(state, ROUTE).routes(meta) == []
    config = Config.model_validate(
        {
            "sources": {},
            "receivers": {"slack": {"console": {}}, "ops": {"console": {}}},
            "route": {"receiver": "slack"},
        }
        | {"meta": {"receiver": "ops"}}
    )
    (route,) = Dispatcher.from_config(config, state).routes(meta)
    assert (route.receiver, route.group_by) == ("ops", ("rule",))


def test_a_group_left_behind_by_a_route_change_is_resolved_in_its_own_thread(state: StateStore) -> None:
    before = Run(state, Dispatcher(state, ROUTE))
    before.step(T0, fired("v1"))
    (first,) = before.step(T0 + 30 * SEC)
    regrouped = ROUTE.model_copy(update={"group_by": ["model_version"]})  # watcher.yaml reloaded
    after = Run(state, Dispatcher(state, regrouped))
    end = T0 + 60 * SEC
    after.step(end, resolved("v1", T0, end))
    sent = after.step(T0 + 5 * 60 * SEC + 30 * SEC)
    old = [n for n in sent if n.thread_key == first.thread_key]
    assert summary(old) == [("slack", "resolved", ["v1"])]
    assert [i.found_late for n in sent for i in n.incidents] == [False, False]  # it was told firing
    with state.reading() as db:
        assert db.execute("SELECT count(*) FROM dispatch_groups").fetchone() == (0,)


def test_a_group_left_behind_that_is_due_as_its_incident_resolves_tells_the_resolved(
    state: StateStore,
) -> None:
    before = Run(state, Dispatcher(state, ROUTE))
    before.step(T0, fired("v1"))
    (first,) = before.step(T0 + 30 * SEC)
    regrouped = ROUTE.model_copy(update={"group_by": ["model_version"]})  # watcher.yaml reloaded
    end = T0 + 5 * 60 * SEC + 30 * SEC  # the old group's next flush
    # As the engine plans: before the tick's commit stores the resolved incident.
    plan = Dispatcher(state, regrouped).plan([resolved("v1", T0, end)], end)
    old = [n for n in plan.notifications if n.thread_key == first.thread_key]
    assert summary(old) == [("slack", "resolved", ["v1"])]


def test_a_groups_members_are_decoded_once_not_at_every_read_of_the_group(
    state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the engine ticks: the open incident is written every minute with its new value, while
    its group's member keeps the snapshot of the group's last flush, read whenever it is due."""
    decoded: list[float] = []
    original = Incident.from_json
    monkeypatch.setattr(Incident, "from_json", lambda data: decoded.append(data["value"]) or original(data))
    dispatcher = Dispatcher(state, ROUTE)
    v1 = incident("v1")

    def tick(now: datetime, *changes: Change) -> list[Notification]:
        nonlocal v1
        state.incidents(states=[State.PENDING, State.FIRING])
        v1 = changes[0].incident if changes else v1.evolve(value=v1.value + 1, last_evaluated_at=now)

        def commit(dispatch: Dispatch) -> None:
            state.commit([v1], notifications=dispatch.notifications, writes=[dispatch.write])

        return dispatcher.settle(changes, now, commit, {v1.fingerprint: v1}).notifications

    tick(T0, Change(v1, Event.FIRING, T0))
    assert summary(tick(T0 + 30 * SEC)) == [("slack", "firing", ["v1"])]
    for minute in range(1, 12):
        assert tick(T0 + 30 * SEC + minute * 60 * SEC) == []
    assert decoded == []  # the member's text is the snapshot this dispatcher wrote

    other = Dispatcher(state, ROUTE)  # another replica rewrites the member
    update = Change(v1.evolve(value=99.0), Event.UPDATE, T0 + 12 * 60 * SEC)
    state.commit([update.incident])
    other.settle([update], update.at, lambda dispatch: state.commit(writes=[dispatch.write]))
    with state.reading() as db:
        (group,) = load_groups(db, [], due_by=T0 + 60 * 60 * SEC, decode=dispatcher.members.decode).values()
    assert [member.incident.value for member in group.members] == [99.0]

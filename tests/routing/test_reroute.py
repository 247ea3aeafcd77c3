"""Routes changed by a reload, on a real state file (SQLite and PostgreSQL): each open incident
leaves the groups of routes it no longer reaches (told there once as a RESOLVED marked
``left_route``, "rerouted by a configuration change", if its firing was) and joins those it
reaches now (told there as firing); a reload that moves nothing tells nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tests.conftest import StateAt
from tests.routing.test_dispatch import SEC, T0, Change, Run, incident
from watcher.config import Route
from watcher.incidents.model import RAISED, Event, State
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.process.reload import reroute_incidents
from watcher.routing.dispatch import Dispatcher
from watcher.templates import left_route

MIN = 60 * SEC
TIMERS = {"group_by": ["rule"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"}
TO_SLACK = Route.model_validate({"receiver": "slack", **TIMERS})
TEAM_ROUTE = {"matchers": ["model_version=v1"], "receiver": "team"}
V1_TO_TEAM = Route.model_validate({"receiver": "slack", **TIMERS, "routes": [TEAM_ROUTE]})


@pytest.fixture
def state(state_at: StateAt) -> Iterator[StateStore]:
    with state_at.open() as opened:
        yield opened


def told(notifications: Sequence[Notification]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (n.receiver, n.event.value, i.group["model_version"], left_route(i))
        for n in notifications
        for i in n.incidents
    )


def firing_on_slack(state: StateStore) -> Run:
    """v1 and v2 fired and were told on Slack."""
    run = Run(state, Dispatcher(state, TO_SLACK))
    run.step(T0, Change(incident("v1"), Event.FIRING, T0), Change(incident("v2"), Event.FIRING, T0))
    assert told(run.step(T0 + 30 * SEC)) == [("slack", "firing", "v1", ""), ("slack", "firing", "v2", "")]
    return run


def reloaded(run: Run, route: Route, at: Sequence[int]) -> list[tuple[str, str, str, str]]:
    """The routes replaced by ``route`` at T0 + 2 min, as a reload does; what the groups tell at
    the minutes ``at``."""
    run.dispatcher = Dispatcher(run.state, route)
    reroute_incidents(run.state, run.dispatcher, T0 + 2 * MIN)
    return told([n for minute in at for n in run.step(T0 + minute * MIN)])


def test_an_incident_moved_to_another_receiver_is_told_there_and_ends_where_it_was(state: StateStore) -> None:
    run = firing_on_slack(state)
    assert reloaded(run, V1_TO_TEAM, at=[3, 6]) == [
        ("slack", "resolved", "v1", "rerouted by a configuration change"),  # still open, told gone
        ("team", "firing", "v1", ""),
    ]
    # Afterwards v1 lives on the team's route only: its resolve is told there, not on Slack.
    done = incident("v1", state=State.RESOLVED, resolved_at=T0 + 20 * MIN)
    ended = run.step(T0 + 20 * MIN, Change(done, Event.RESOLVED, T0 + 20 * MIN)) + run.step(T0 + 30 * MIN)
    assert told(ended) == [("team", "resolved", "v1", "")]
    later = [n for minute in range(31, 120, 5) for n in run.step(T0 + minute * MIN)]
    assert told(later) == [("slack", "update", "v2", "")]  # v2's repeat, v1 not in it


def test_a_reload_that_moves_no_incident_tells_nothing(state: StateStore) -> None:
    run = firing_on_slack(state)
    same = Route.model_validate(
        {"receiver": "slack", **TIMERS, "routes": [{**TEAM_ROUTE, "matchers": ["x=y"]}]}
    )
    assert reloaded(run, same, at=[3, 8, 30]) == []
    assert reroute_incidents(state, run.dispatcher, T0 + 31 * MIN) == 0


def test_rerouting_twice_as_two_replicas_reloading_does_is_told_once(state: StateStore) -> None:
    run = firing_on_slack(state)
    other = Dispatcher(state, V1_TO_TEAM)  # the other replica, reloaded too
    assert reroute_incidents(state, other, T0 + 2 * MIN) == 2
    assert reloaded(run, V1_TO_TEAM, at=[3, 6]) == [
        ("slack", "resolved", "v1", "rerouted by a configuration change"),
        ("team", "firing", "v1", ""),
    ]


def test_only_raised_incidents_move(state: StateStore) -> None:
    run = firing_on_slack(state)
    pending = incident("v3", state=State.PENDING, fired_at=None)
    state.commit([pending])
    assert {i.group["model_version"] for i in state.incidents(states=RAISED)} == {"v1", "v2"}
    assert reloaded(run, Route.model_validate({"receiver": "team", **TIMERS}), at=[3, 6]) == [
        ("slack", "resolved", "v1", "rerouted by a configuration change"),
        ("slack", "resolved", "v2", "rerouted by a configuration change"),
        ("team", "firing", "v1", ""),
        ("team", "firing", "v2", ""),
    ]

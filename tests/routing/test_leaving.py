"""An incident a severity change takes off a route, on a real state file (SQLite and PostgreSQL):
told there once as a RESOLVED marked ``left_route`` when that receiver heard of it, muted and
deduplicated like any RESOLVED, and never again afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest

from tests.conftest import StateAt
from tests.routing.test_dispatch import SEC, T0, Change, Run, incident
from watcher.config import Route
from watcher.incidents.model import Event
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.dispatch import Dispatcher
from watcher.routing.matchers import Matcher
from watcher.routing.silences import SilenceStore, new_silence
from watcher.templates import left_route

MIN = 60 * SEC
BY_SEVERITY = Route.model_validate(
    {
        "receiver": "slack",
        "group_by": ["rule"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "1h",
        "routes": [{"matchers": ["severity=critical"], "receiver": "pager"}],
    }
)


@pytest.fixture
def state(state_at: StateAt) -> Iterator[StateStore]:
    with state_at.open() as opened:
        yield opened


def changed(severity: str, before: str, at: datetime) -> Change:
    """The UPDATE telling v1's severity changed from ``before`` to ``severity``."""
    return Change(incident("v1", severity=severity, severity_from=before), Event.UPDATE, at)


def told(notifications: Sequence[Notification]) -> list[tuple[str, str, str, bool]]:
    return [(n.receiver, n.event.value, i.severity, i.left_route) for n in notifications for i in n.incidents]


def escalated(state: StateStore) -> Run:
    """v1 fired as a warning (told on Slack), then escalated to critical (told on the pager)."""
    run = Run(state, Dispatcher(state, BY_SEVERITY))
    run.step(T0, Change(incident("v1"), Event.FIRING, T0))
    run.step(T0 + 30 * SEC)
    run.step(T0 + MIN, changed("critical", "warning", T0 + MIN))
    assert told(run.step(T0 + MIN + 30 * SEC)) == [("pager", "firing", "critical", False)]
    return run


def test_each_route_left_is_told_once_and_hears_nothing_more(state: StateStore) -> None:
    run = escalated(state)
    assert told(run.step(T0 + 5 * MIN + 30 * SEC)) == [("slack", "resolved", "critical", True)]

    run.step(T0 + 6 * MIN, changed("warning", "critical", T0 + 6 * MIN))
    sent = run.step(T0 + 10 * MIN + 30 * SEC)

    assert sorted(told(sent)) == [
        ("pager", "resolved", "warning", True),
        ("slack", "firing", "warning", False),
    ]
    assert told(run.step(T0 + 2 * 60 * MIN)) == [("slack", "update", "warning", False)]  # the repeat


def test_a_route_left_while_silenced_is_not_told(state: StateStore) -> None:
    run = escalated(state)
    pager = Matcher.parse("severity=warning")
    SilenceStore(state).add(new_silence([pager], T0, T0 + 60 * MIN, "ann", "x", T0))
    run.step(T0 + 2 * MIN, changed("warning", "critical", T0 + 2 * MIN))

    assert [n for n in run.step(T0 + 6 * MIN + 30 * SEC) if n.receiver == "pager"] == []
    assert [n for n in run.step(T0 + 90 * MIN) if n.receiver == "pager"] == []


def test_a_replanned_flush_telling_a_route_was_left_has_the_same_ids(state: StateStore) -> None:
    run = escalated(state)
    run.step(T0 + 2 * MIN, changed("warning", "critical", T0 + 2 * MIN))
    first = run.dispatcher.plan([], T0 + 6 * MIN + 30 * SEC)  # the process dies before committing
    again = run.dispatcher.plan([], T0 + 6 * MIN + 40 * SEC)

    assert [n.id for n in first.notifications] == [n.id for n in again.notifications]
    assert ("pager", "resolved", "warning", True) in told(again.notifications)


def test_a_severity_changed_while_flapping_leaves_the_route_when_flapping_ends(state: StateStore) -> None:
    run = escalated(state)
    # Flapping told nothing while it de-escalated; its end is an UPDATE at the new level.
    ended = incident("v1", severity="warning", flap_ended=True)
    sent = run.step(T0 + 30 * MIN, Change(ended, Event.UPDATE, T0 + 30 * MIN))  # both groups due

    assert ("pager", "resolved", "warning", True) in told(sent)
    (page,) = [n for n in sent if n.receiver == "pager"]
    assert left_route(page.incidents[0]) == "now warning"


def test_up_and_down_within_group_wait_tells_the_pager_nothing(state: StateStore) -> None:
    run = Run(state, Dispatcher(state, BY_SEVERITY))
    run.step(T0, Change(incident("v1"), Event.FIRING, T0))
    run.step(T0 + 30 * SEC)
    run.step(T0 + MIN, changed("critical", "warning", T0 + MIN), changed("warning", "critical", T0 + MIN))

    assert told(run.step(T0 + 5 * MIN + 30 * SEC)) == [("slack", "update", "warning", False)]
    assert run.step(T0 + 10 * MIN + 30 * SEC) == []

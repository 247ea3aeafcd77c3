"""Acks in the dispatcher, on each state backend: the rule's own repeat is not sent for an
acknowledged incident, and flapping starting undoes the ack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StateAt
from watcher.config import Route
from watcher.incidents import acks
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.acknowledge import acknowledge
from watcher.routing.dispatch import Dispatcher

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ROUTE = Route.model_validate(
    {"receiver": "slack", "group_by": ["rule"], "group_wait": "0s", "group_interval": "1m",
     "repeat_interval": "4h"}
)  # fmt: skip


@dataclass(frozen=True)
class Change:
    incident: Incident
    event: Event
    at: datetime


def incident(**fields: object) -> Incident:
    group = {"model_version": "v3"}
    values: dict[str, object] = {
        "fingerprint": fingerprint("api-5xx", group), "rule": "api-5xx", "group": group,
        "labels": {"rule": "api-5xx"}, "annotations": {}, "severity": "warning", "state": State.FIRING,
        "value": 0.2, "threshold": 0.05, "started_at": T0, "fired_at": T0,
    }  # fmt: skip
    return Incident(**(values | fields))  # type: ignore[arg-type]


@pytest.fixture
def state(state_at: StateAt) -> Iterator[StateStore]:
    with state_at.open() as opened:
        yield opened


def step(state: StateStore, now: datetime, *changes: Change) -> list[Notification]:
    state.commit([change.incident for change in changes])
    plan = Dispatcher(state, ROUTE).plan(changes, now)
    state.commit(notifications=plan.notifications, writes=[plan.write])
    return plan.notifications


def test_the_rules_own_repeat_is_not_sent_for_an_acknowledged_incident(state: StateStore) -> None:
    step(state, T0, Change(incident(), Event.FIRING, T0))
    acknowledge(state, incident(), "ann", "on it", T0 + MIN)
    # The rule's repeat_interval (the machine's UPDATE, nothing changed) comes at T0 + 30m.
    again = incident(last_notified_at=T0)
    assert step(state, T0 + 30 * MIN, Change(again, Event.UPDATE, T0 + 30 * MIN)) == []
    assert step(state, T0 + 31 * MIN) == []


def test_flapping_starting_undoes_the_ack(state: StateStore) -> None:
    step(state, T0, Change(incident(), Event.FIRING, T0))
    acknowledge(state, incident(), "ann", "on it", T0 + MIN)
    flapping = incident(flapping=True, note="flapping: 4 changes in the last 20 evaluations")
    [told] = step(state, T0 + 30 * MIN, Change(flapping, Event.UPDATE, T0 + 30 * MIN))
    assert told.incidents[0].ack is None
    with state.reading() as db:
        assert acks.load(db) == {}
    settled = incident(flap_ended=True)  # flapping ends as it was acknowledged: the ack stays undone
    step(state, T0 + 60 * MIN, Change(settled, Event.UPDATE, T0 + 60 * MIN))
    assert len(step(state, T0 + 5 * 60 * MIN + MIN)) == 1  # 4h after the last message: repeated again

"""The engine's tick with the dispatcher, on a real embedded store and state file: one transaction,
grouped notifications, and store outages that are neither a flatline nor a resolve."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.config import Route
from watcher.engine import Engine
from watcher.incidents.model import Event, State
from watcher.incidents.state import StateStore
from watcher.query import Query, QueryResult
from watcher.rules.models import Rule
from watcher.store.base import StoreError
from watcher.store.embedded import EmbeddedStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ROUTE = Route.model_validate(
    {"receiver": "slack", "group_by": ["rule"], "group_wait": "30s", "group_interval": "1m"}
)


def rule(**fields: Any) -> Rule:
    spec: dict[str, Any] = {
        "name": "api-5xx",
        "source": "app",
        "every": "1m",
        "window": "1m",
        "delay": "0s",
        "group_by": ["model"],
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
        "min_events": 5,
        "threshold": {"above": 0.5},
    }
    return Rule.model_validate(spec | fields)


class Switch:
    """A real embedded store behind a switch that makes it unreachable."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store, self.down = store, False

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        if self.down:
            raise StoreError("connection refused")
        return self.store.evaluate(queries)

    def close(self) -> None:
        self.store.close()


def requests(store: EmbeddedStore, start: datetime, minutes: int, model: str, status: int) -> None:
    lines = [
        json.dumps(
            {"@timestamp": (start + i * timedelta(seconds=10)).isoformat(), "model": model, "status": status}
        )
        for i in range(minutes * 6)
    ]
    store.ingest_lines(lines)


def test_incidents_of_one_group_are_notified_together_after_group_wait(
    store: EmbeddedStore, state: StateStore
) -> None:
    requests(store, T0 - MIN, 3, "v2", 503)
    requests(store, T0 - MIN, 3, "v3", 503)
    engine = Engine([rule()], {"app": store}, state, ROUTE)
    first = engine.tick(T0)
    assert sorted(t.incident.group["model"] for t in first.transitions) == ["v2", "v3"]
    assert first.notifications == []  # group_wait
    (sent,) = engine.tick(T0 + MIN).notifications
    assert (sent.event, [i.group["model"] for i in sent.incidents]) == (Event.FIRING, ["v2", "v3"])
    assert state.outbox_depth() == 1


def test_a_store_outage_keeps_state_and_the_missed_windows_are_evaluated_after_it(
    store: EmbeddedStore, state: StateStore
) -> None:
    switch = Switch(store)
    flatline = rule(name="traffic", group_by=[], signal={"count": {}}, threshold=None,
                    flatline={"below": 3}, min_events=0)  # fmt: skip
    engine = Engine([rule(), flatline], {"app": switch}, state, ROUTE)
    requests(store, T0 - MIN, 12, "v1", 200)
    requests(store, T0 + 2 * MIN, 1, "v1", 503)  # a burst while the store is down...
    requests(store, T0 + 2 * MIN, 1, "v1", 503)
    assert engine.tick(T0).transitions == []
    switch.down = True
    for minute in (1, 2, 3, 4):
        report = engine.tick(T0 + minute * MIN)
        assert (report.transitions, report.errors["api-5xx"]) == ([], "connection refused")
    assert state.checkpoint("api-5xx") == T0  # the failed windows wait
    switch.down = False
    report = engine.tick(T0 + 5 * MIN)
    events = [(t.incident.rule, t.event, t.at) for t in report.transitions]
    # ...is found after it, at the time it happened; and nothing fired for the missing traffic.
    assert events == [("api-5xx", Event.FIRING, T0 + 3 * MIN), ("api-5xx", Event.RESOLVED, T0 + 4 * MIN)]
    assert state.checkpoint("api-5xx") == T0 + 5 * MIN


def test_an_outage_never_resolves_a_firing_incident(store: EmbeddedStore, state: StateStore) -> None:
    switch = Switch(store)
    engine = Engine([rule()], {"app": switch}, state, ROUTE)
    requests(store, T0 - MIN, 1, "v1", 503)
    engine.tick(T0)
    switch.down = True
    engine.tick(T0 + MIN)
    (kept,) = state.incidents()
    assert (kept.state, kept.note) == (State.FIRING, "store error: connection refused")


def test_a_tick_rerun_after_a_crash_produces_the_same_notification_ids(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    requests(store, T0 - MIN, 3, "v1", 503)
    committed, crashed = tmp_path / "committed.sqlite", tmp_path / "crashed.sqlite"
    with StateStore(committed) as state:
        Engine([rule()], {"app": store}, state, ROUTE).tick(T0)
    shutil.copy(committed, crashed)  # the state as a crash during the next tick leaves it
    with StateStore(committed) as state:
        first = Engine([rule()], {"app": store}, state, ROUTE).tick(T0 + MIN)
    with StateStore(crashed) as state:  # restarted 10s later, the same tick runs again
        again = Engine([rule()], {"app": store}, state, ROUTE).tick(T0 + MIN + 10 * timedelta(seconds=1))
    assert [n.id for n in again.notifications] == [n.id for n in first.notifications]
    assert len(first.notifications) == 1


# ---------------------------------------------------------------------- evaluations, for /metrics


def test_each_evaluation_is_reported_with_its_rule_and_a_positive_duration(
    store: EmbeddedStore, state: StateStore
) -> None:
    requests(store, T0 - MIN, 1, "v1", 200)
    traffic = rule(name="traffic", group_by=[], signal={"count": {}}, threshold={"above": 1000})
    report = Engine([rule(), traffic], {"app": store}, state, ROUTE).tick(T0)
    assert [(e.rule, e.at, e.error) for e in report.evaluated] == [
        ("api-5xx", T0, False),
        ("traffic", T0, False),
    ]
    assert all(e.seconds > 0 for e in report.evaluated)
    assert report.evaluations == len(report.evaluated)


def test_an_evaluation_whose_store_fails_is_an_error_of_that_rule_only(
    store: EmbeddedStore, state: StateStore, tmp_path: Path
) -> None:
    down = Switch(EmbeddedStore(tmp_path / "other.duckdb"))
    down.down = True
    engine = Engine([rule(), rule(name="other", source="other")], {"app": store, "other": down}, state, ROUTE)
    report = engine.tick(T0)
    down.close()
    assert {e.rule: e.error for e in report.evaluated} == {"api-5xx": False, "other": True}
    assert all(e.seconds > 0 for e in report.evaluated)


def test_a_catch_up_tick_reports_one_evaluation_per_window(store: EmbeddedStore, state: StateStore) -> None:
    engine = Engine([rule()], {"app": store}, state, ROUTE)
    engine.tick(T0)
    report = engine.tick(T0 + 3 * MIN)
    assert [(e.rule, e.at) for e in report.evaluated] == [("api-5xx", T0 + m * MIN) for m in (1, 2, 3)]
    assert report.round_trips == {"app": 1}  # the windows share one store call...
    assert all(e.seconds > 0 for e in report.evaluated)  # ...and each is charged its share of it


def test_windows_waiting_behind_a_failed_one_are_not_evaluations(
    store: EmbeddedStore, state: StateStore
) -> None:
    switch = Switch(store)
    engine = Engine([rule()], {"app": switch}, state, ROUTE)
    engine.tick(T0)
    switch.down = True
    report = engine.tick(T0 + 3 * MIN)
    assert [(e.at, e.error) for e in report.evaluated] == [(T0 + MIN, True)]
    assert report.evaluations == 1

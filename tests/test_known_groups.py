"""Known groups on a real embedded store and state file: a per-group flatline fires for the group
that goes silent, ``forget_after`` retires a group for good, and the lookback that seeds what a
rule knows is read once per start, not at every evaluation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.config import Route
from watcher.engine import Engine
from watcher.incidents.model import Event, State
from watcher.incidents.state import StateStore
from watcher.query import Query, QueryResult
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore
from watcher.tick_report import TickReport

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ROUTE = Route.model_validate({"receiver": "slack", "group_by": ["rule"], "group_wait": "0s"})


def flatline(**fields: Any) -> Rule:
    spec: dict[str, Any] = {
        "name": "per-svc-traffic",
        "source": "app",
        "every": "1m",
        "window": "1m",
        "delay": "0s",
        "group_by": ["svc"],
        "flatline": {"below": 3},
    }
    return Rule.model_validate(spec | fields)


def traffic(store: EmbeddedStore, start: datetime, minutes: int, *services: str) -> None:
    """Six requests a minute from each service, from ``start`` for ``minutes``."""
    store.ingest_lines(
        json.dumps({"@timestamp": (start + i * timedelta(seconds=10)).isoformat(), "svc": svc})
        for i in range(minutes * 6)
        for svc in services
    )


class Recorder:
    """A real embedded store that keeps every query it was sent, and can fail the lookback."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store, self.sent, self.fail_lookbacks = store, list[Query](), 0

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        self.sent += queries
        results = self.store.evaluate(queries)
        if self.fail_lookbacks:
            self.fail_lookbacks -= 1
            return [
                QueryResult(r.query_id, error="timed out") if _lookback(q) else r
                for q, r in zip(queries, results, strict=True)
            ]
        return results

    def lookbacks(self) -> int:
        return sum(1 for query in self.sent if _lookback(query))

    def close(self) -> None:
        self.store.close()


def _lookback(query: Query) -> bool:
    return query.window.end - query.window.start > MIN


def fired(report: TickReport) -> list[str]:
    return sorted(t.incident.group["svc"] for t in report.transitions if t.event is Event.FIRING)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Recorder]:
    opened = Recorder(EmbeddedStore(tmp_path / "logs.duckdb"))
    yield opened
    opened.close()


def test_a_per_group_flatline_fires_for_the_one_group_that_drops_to_zero(
    store: Recorder, state: StateStore
) -> None:
    traffic(store.store, T0 - 5 * MIN, 5, "a", "b", "c")
    traffic(store.store, T0, 10, "a", "b")  # c stops at T0
    engine = Engine([flatline()], {"app": store}, state, ROUTE)
    assert fired(engine.tick(T0)) == []
    assert fired(engine.tick(T0 + MIN)) == ["c"]
    assert [fired(engine.tick(T0 + m * MIN)) for m in (2, 3)] == [[], []]
    (incident,) = state.incidents()
    assert (incident.group, incident.state, incident.value) == ({"svc": "c"}, State.FIRING, 0)


@pytest.mark.parametrize(("fields", "expected"), [({}, ["b"]), ({"groups_from": "20m"}, [])])
def test_a_group_silent_before_the_start_is_found_by_a_long_enough_lookback(
    store: Recorder, state: StateStore, fields: dict[str, Any], expected: list[str]
) -> None:
    traffic(store.store, T0 - 40 * MIN, 10, "a", "b")
    traffic(store.store, T0 - 30 * MIN, 31, "a")  # b went silent 30 minutes before watcher started
    engine = Engine([flatline(**fields)], {"app": store}, state, ROUTE)
    assert fired(engine.tick(T0)) == expected


@pytest.mark.parametrize(
    ("fields", "expected"), [({}, [[], ["c"], []]), ({"groups_from": "0s"}, [[], [], []])]
)
def test_groups_from_0s_keeps_only_open_incidents_known(
    store: Recorder, state: StateStore, fields: dict[str, Any], expected: list[list[str]]
) -> None:
    traffic(store.store, T0 - 5 * MIN, 5, "a", "c")
    traffic(store.store, T0, 3, "a")
    engine = Engine([flatline(**fields)], {"app": store}, state, ROUTE)
    assert [fired(engine.tick(T0 + m * MIN)) for m in (0, 1, 2)] == expected
    assert store.lookbacks() == (0 if fields else 1)


def test_the_lookback_is_one_query_per_rule_per_start_in_the_ticks_own_store_call(
    store: Recorder, state: StateStore
) -> None:
    traffic(store.store, T0 - 5 * MIN, 15, "a", "b")
    other = flatline(name="other-traffic", flatline={"below": 1})
    engine = Engine([flatline(), other], {"app": store}, state, ROUTE)
    reports = [engine.tick(T0 + m * MIN) for m in range(5)]
    assert [report.round_trips for report in reports] == [{"app": 1}] * 5
    assert store.lookbacks() == 2  # one per rule, at the first tick
    engine.set_rules([flatline(), other])  # a reload that changed neither rule
    engine.tick(T0 + 5 * MIN)
    assert store.lookbacks() == 2
    engine.set_rules([flatline(), other.model_copy(update={"min_events": 2})])  # an edit looks again
    engine.tick(T0 + 6 * MIN)
    assert store.lookbacks() == 3
    Engine([flatline(), other], {"app": store}, state, ROUTE).tick(T0 + 7 * MIN)  # a restart
    assert store.lookbacks() == 5


def test_a_failed_lookback_fires_nothing_and_is_sent_again(store: Recorder, state: StateStore) -> None:
    traffic(store.store, T0 - 10 * MIN, 5, "a", "b")
    traffic(store.store, T0 - 5 * MIN, 10, "a")  # b silent since T0 - 5m
    store.fail_lookbacks = 1
    engine = Engine([flatline()], {"app": store}, state, ROUTE)
    first = engine.tick(T0)
    assert (fired(first), first.errors) == ([], {})
    assert fired(engine.tick(T0 + MIN)) == ["b"]
    assert store.lookbacks() == 2


def test_a_forgotten_group_resolves_with_a_note_and_stays_quiet_until_it_comes_back(
    store: Recorder, state: StateStore
) -> None:
    traffic(store.store, T0 - 5 * MIN, 5, "a", "c")
    traffic(store.store, T0, 20, "a")  # c stops at T0...
    traffic(store.store, T0 + 20 * MIN, 5, "a", "c")  # ...and comes back at T0 + 20m
    traffic(store.store, T0 + 25 * MIN, 10, "a")  # then stops again
    engine = Engine([flatline(groups_from="5m", forget_after="10m")], {"app": store}, state, ROUTE)
    reports = {m: engine.tick(T0 + m * MIN) for m in range(36)}
    events = [(m, t.event) for m, report in reports.items() for t in report.transitions]
    # c's last data ends at T0: the window ending T0 + 10m is 10m without; likewise after T0 + 25m.
    assert events == [(1, Event.FIRING), (10, Event.RESOLVED), (26, Event.FIRING), (35, Event.RESOLVED)]
    note = "no data from svc=c for 10m (forget_after): this group is no longer watched"
    ended = [t for report in reports.values() for t in report.transitions if t.event is Event.RESOLVED]
    assert [(t.incident.group, t.incident.resolved_at, t.incident.note) for t in ended] == [
        ({"svc": "c"}, T0 + 10 * MIN, note),
        ({"svc": "c"}, T0 + 35 * MIN, note),
    ]


def test_forget_after_resolves_a_threshold_rules_incident_of_a_group_that_left(
    store: Recorder, state: StateStore
) -> None:
    traffic(store.store, T0 - 5 * MIN, 6, "a", "c")
    traffic(store.store, T0 + MIN, 10, "a")  # c leaves, its incident firing
    busy = flatline(flatline=None, threshold={"above": 1}, min_events=1, forget_after="5m")
    engine = Engine([busy], {"app": store}, state, ROUTE)
    assert fired(engine.tick(T0)) == ["a", "c"]
    for m in range(1, 8):
        engine.tick(T0 + m * MIN)
    by_group = {i.group["svc"]: (i.state, i.note) for i in state.incidents()}
    assert by_group == {
        "a": (State.FIRING, ""),
        "c": (State.RESOLVED, "no data from svc=c for 5m (forget_after): this group is no longer watched"),
    }


@pytest.mark.parametrize(
    ("fields", "lookback"),
    [
        ({}, timedelta(hours=1)),
        ({"window": "45m"}, timedelta(minutes=90)),
        ({"groups_from": "3h"}, timedelta(hours=3)),
        ({"groups_from": "0s"}, None),
        ({"flatline": None, "threshold": {"above": 1}}, None),
        ({"group_by": []}, None),
    ],
)
def test_a_grouped_flatline_knows_the_last_hour_of_groups_by_default(
    fields: dict[str, Any], lookback: timedelta | None
) -> None:
    assert flatline(**fields).known_groups_lookback == lookback


def test_a_group_back_in_the_window_that_would_forget_it_is_not_forgotten(
    store: Recorder, state: StateStore
) -> None:
    traffic(store.store, T0 - 10 * MIN, 10, "a", "c")
    traffic(store.store, T0, 15, "a")
    traffic(store.store, T0 + 15 * MIN, 5, "a", "c")  # c is back in the window ending T0 + 20m
    traffic(store.store, T0 + 20 * MIN, 10, "a")
    every_10m = {"every": "10m", "window": "10m", "groups_from": "20m", "forget_after": "20m"}
    engine = Engine([flatline(**every_10m)], {"app": store}, state, ROUTE)
    reports = [engine.tick(T0 + m * MIN) for m in (0, 10, 20, 30)]
    events = [[(t.event, t.incident.note) for t in report.transitions] for report in reports]
    assert events == [[], [(Event.FIRING, "")], [(Event.RESOLVED, "")], [(Event.FIRING, "")]]

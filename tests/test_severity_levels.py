"""Severity levels and per-group overrides through the real engine: a DuckDB store, the SQLite
state file and the dispatcher. A change of severity is one UPDATE, in the incident's thread, routed
by the new severity; a route it leaves is told it left (a RESOLVED saying it is still open), a route it
comes onto starts with a FIRING; an override judges its group only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.config import Route
from watcher.engine import Engine
from watcher.incidents.model import Event, State
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore
from watcher.templates import left_route

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
FAST = {"group_by": ["rule"], "group_wait": "0s", "group_interval": "1m"}
ONE_RECEIVER = Route.model_validate({"receiver": "slack", **FAST})
BY_SEVERITY = Route.model_validate(
    {"receiver": "slack", **FAST, "routes": [{"matchers": ["severity=critical"], "receiver": "pager"}]}
)
# The pager for criticals, and Slack for everything (the pager's route continues).
PAGER_AND_ALL = Route.model_validate(
    {
        "receiver": "slack",
        **FAST,
        "routes": [
            {"matchers": ["severity=critical"], "receiver": "pager", "continue": True},
            {"receiver": "slack"},
        ],
    }
)
# 5xx share per minute from T0: warning (> 0.2), critical (> 0.6), warning again, then fine.
SHARES = [0.3] * 3 + [0.8] * 3 + [0.3] * 3 + [0.0] * 2


def rule(**fields: Any) -> Rule:
    spec: dict[str, Any] = {
        "name": "api-5xx",
        "source": "app",
        "every": "1m",
        "window": "1m",
        "delay": "0s",
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
        "threshold": {"above": {"warning": 0.2, "critical": 0.6}},
    }
    return Rule.model_validate(spec | fields)


def traffic(store: EmbeddedStore, shares: Sequence[float], tenant: str = "t") -> None:
    """Ten requests a minute from T0, ``share`` of them answered 503."""
    lines = []
    for minute, share in enumerate(shares):
        for i in range(10):
            at = T0 + minute * MIN + i * timedelta(seconds=6)
            status = 503 if i < round(share * 10) else 200
            lines.append(json.dumps({"@timestamp": at.isoformat(), "status": status, "tenant": tenant}))
    store.ingest_lines(lines)


# Requests per minute from T0: climbing (the forecast reaches warning's 100 within 5 minutes), climbing
# faster (it reaches critical's 150), level at 120 (warning: over 100, not climbing), then fine.
LOAD = [40] * 4 + [50, 60, 70, 90, 110] + [120] * 5 + [80, 60]
LOAD_FORECAST = {
    "signal": "count",
    "forecast": {
        "above": {"warning": 100, "critical": 150},
        "history": "5m",
        "horizon": "5m",
        "min_points": 3,
    },
}


def load_lines(per_minute: Sequence[int]) -> list[str]:
    """``per_minute[m]`` requests in minute ``m`` after T0, evenly spread."""
    return [
        json.dumps({"@timestamp": (T0 + minute * MIN + i * MIN / count).isoformat(), "status": 200})
        for minute, count in enumerate(per_minute)
        for i in range(count)
    ]


def replay(engine: Engine, minutes: int) -> tuple[list[tuple[Event, str]], list[Notification]]:
    """Tick each minute after T0; the transitions (event, severity) and notifications."""
    transitions, sent = [], []
    for minute in range(1, minutes + 1):
        report = engine.tick(T0 + minute * MIN)
        transitions += [(t.event, t.incident.severity) for t in report.transitions]
        sent += report.notifications
    return transitions, sent


def told(sent: Sequence[Notification]) -> list[tuple[str, Event, str]]:
    return [(n.receiver, n.event, n.incidents[0].severity) for n in sent]


def stories(sent: Sequence[Notification]) -> dict[str, list[tuple[Event, str, str]]]:
    """What each receiver was told, in order: event, severity and why it left the route."""
    told: dict[str, list[tuple[Event, str, str]]] = {}
    for n in sent:
        told.setdefault(n.receiver, []).append((n.event, n.incidents[0].severity, left_route(n.incidents[0])))
    return told


ESCALATED_AND_BACK = {
    "slack": [
        (Event.FIRING, "warning", ""),
        (Event.RESOLVED, "critical", "escalated to critical"),  # still open, on the pager's route
        (Event.FIRING, "warning", ""),  # back on Slack's route: its first word since is a FIRING
        (Event.RESOLVED, "warning", ""),
    ],
    "pager": [
        (Event.FIRING, "critical", ""),
        (Event.RESOLVED, "warning", "de-escalated to warning"),  # the page closes, still open
    ],
}


def test_an_escalation_and_a_de_escalation_are_one_update_each_in_the_incidents_thread(
    store: EmbeddedStore, state: StateStore
) -> None:
    traffic(store, SHARES)
    engine = Engine([rule()], {"app": store}, state, ONE_RECEIVER)

    transitions, sent = replay(engine, len(SHARES))

    assert transitions == [
        (Event.FIRING, "warning"),
        (Event.UPDATE, "critical"),
        (Event.UPDATE, "warning"),
        (Event.RESOLVED, "warning"),
    ]
    assert told(sent) == [
        ("slack", Event.FIRING, "warning"),
        ("slack", Event.UPDATE, "critical"),
        ("slack", Event.UPDATE, "warning"),
        ("slack", Event.RESOLVED, "warning"),
    ]
    assert len({n.thread_key for n in sent}) == 1
    assert sent[1].incidents[0].labels["severity"] == "critical"


def test_a_change_of_severity_is_routed_by_the_new_severity_and_each_route_left_is_told(
    store: EmbeddedStore, state: StateStore
) -> None:
    traffic(store, SHARES)
    engine = Engine([rule()], {"app": store}, state, BY_SEVERITY)

    _, sent = replay(engine, len(SHARES) + 3)

    assert stories(sent) == ESCALATED_AND_BACK
    pages = [n for n in sent if n.receiver == "pager"]
    assert len({n.thread_key for n in pages}) == 1  # the page it opened is the one it closes
    assert [n.incidents[0].state for n in pages] == [State.FIRING, State.FIRING]


def test_a_route_the_incident_stays_on_gets_one_update_per_change(
    store: EmbeddedStore, state: StateStore
) -> None:
    traffic(store, SHARES)
    engine = Engine([rule()], {"app": store}, state, PAGER_AND_ALL)

    _, sent = replay(engine, len(SHARES) + 3)

    assert stories(sent) == {
        "slack": [
            (Event.FIRING, "warning", ""),
            (Event.UPDATE, "critical", ""),
            (Event.UPDATE, "warning", ""),
            (Event.RESOLVED, "warning", ""),
        ],
        "pager": [(Event.FIRING, "critical", ""), (Event.RESOLVED, "warning", "de-escalated to warning")],
    }
    assert len({n.thread_key for n in sent if n.receiver == "slack"}) == 1


def test_a_severity_change_inside_group_wait_leaves_a_route_that_told_nothing_silently(
    store: EmbeddedStore, state: StateStore
) -> None:
    traffic(store, SHARES)
    waits = Route.model_validate(
        {
            "receiver": "slack",
            **FAST,
            "routes": [{"matchers": ["severity=critical"], "receiver": "pager", "group_wait": "5m"}],
        }
    )
    engine = Engine([rule()], {"app": store}, state, waits)

    _, sent = replay(engine, len(SHARES) + 3)

    # Critical for 3 minutes, the pager's group_wait is 5: the pager never heard of it.
    assert stories(sent) == {"slack": ESCALATED_AND_BACK["slack"]}
    assert state.incidents()[0].state is State.RESOLVED


def test_an_escalation_waits_for_the_higher_level_to_hold_for_for(
    store: EmbeddedStore, state: StateStore
) -> None:
    traffic(store, [0.3] * 3 + [0.8] + [0.3] + [0.8] * 3)
    engine = Engine([rule(**{"for": "1m"})], {"app": store}, state, ONE_RECEIVER)

    transitions, _ = replay(engine, 8)

    assert transitions == [(Event.FIRING, "warning"), (Event.UPDATE, "critical")]


def test_a_forecast_escalates_and_de_escalates_with_one_update_each_in_the_incidents_thread(
    store: EmbeddedStore, state: StateStore
) -> None:
    store.ingest_lines(load_lines(LOAD))
    forecast = rule(name="api-load", threshold=None, **LOAD_FORECAST)
    engine = Engine([forecast], {"app": store}, state, BY_SEVERITY)

    transitions, sent = replay(engine, len(LOAD))

    assert transitions == [
        (Event.FIRING, "warning"),  # minute 7: 70 climbing 10 a minute
        (Event.UPDATE, "critical"),  # minute 9: 110 climbing 20 a minute
        (Event.UPDATE, "warning"),  # minute 13: level at 120
        (Event.RESOLVED, "warning"),
    ]
    assert stories(sent) == ESCALATED_AND_BACK
    (incident,) = state.incidents()
    assert incident.severity == "warning"


def test_a_per_tenant_override_fires_for_the_small_tenant_only(
    store: EmbeddedStore, state: StateStore
) -> None:
    traffic(store, [0.3] * 3, tenant="big")
    traffic(store, [0.3] * 3, tenant="small")
    quota = rule(
        group_by=["tenant"],
        threshold={"above": 0.1},
        overrides=[{"group": {"tenant": "big"}, "threshold": {"above": 0.5}}],
    )
    engine = Engine([quota], {"app": store}, state, ONE_RECEIVER)

    replay(engine, 3)

    assert [(i.group, i.state.value) for i in state.incidents()] == [({"tenant": "small"}, "firing")]

"""What a scrape of /metrics shows after the daemon's ticks and drains: the engine's evaluations
and the outbox's deliveries per receiver, through ``Operations`` on real stores."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.notify.test_outbox import Recorder, notification
from tests.test_engine import ROUTE, Switch, requests, rule
from watcher.config import Config
from watcher.engine import Engine
from watcher.incidents.state import StateStore
from watcher.notify.base import Delivery
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.process.operations import Operations
from watcher.store.embedded import EmbeddedStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
CONFIG = Config.model_validate(
    {
        "sources": {},
        "receivers": {"slack": {"console": {}}},
        "route": {"receiver": "slack"},
        "http": {"enabled": False},
    }
)


@pytest.fixture
def operations(monkeypatch: pytest.MonkeyPatch) -> Operations:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    return Operations(CONFIG, [rule(), rule(name="other", source="other")])


def scrape(operations: Operations) -> list[str]:
    body, _ = operations.metrics.exposition()
    return body.decode().splitlines()


def test_every_evaluation_of_a_tick_is_timed_and_counted_per_rule(
    operations: Operations, state: StateStore, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    lines = [
        json.dumps({"@timestamp": (T0 - i * timedelta(seconds=10)).isoformat(), "status": 200})
        for i in range(6)
    ]
    store.ingest_lines(lines)
    down = Switch(EmbeddedStore(tmp_path / "other.duckdb"))
    down.down = True
    engine = Engine(list(operations.rules.values()), {"app": store, "other": down}, state, ROUTE)
    try:
        for now in (T0, T0 + 2 * MIN):  # the second tick catches up one missed window of each
            operations.tick_done(engine.tick(now), state, now)
    finally:
        store.close()
        down.close()
    metrics = scrape(operations)
    assert 'watcher_rule_evaluations_total{rule="api-5xx"} 3.0' in metrics
    assert 'watcher_rule_errors_total{rule="api-5xx"} 0.0' in metrics
    assert 'watcher_rule_evaluation_seconds_count{rule="api-5xx"} 3.0' in metrics
    assert 'watcher_rule_evaluation_seconds_bucket{le="60.0",rule="api-5xx"} 3.0' in metrics
    # The failed store's rule waits for its failed window, evaluated (and failing) once per tick.
    assert 'watcher_rule_evaluations_total{rule="other"} 2.0' in metrics
    assert 'watcher_rule_errors_total{rule="other"} 2.0' in metrics


def test_deliveries_are_counted_per_receiver(operations: Operations, state: StateStore) -> None:
    state.commit(
        [], [], [notification("n1", "a"), notification("n2", "b"), notification("m1", "c", receiver="mail")]
    )
    slack = Recorder(script=[Delivery(ok=False, error="HTTP 500")])
    mail = Recorder(script=[Delivery(ok=False, error="550 no such user", permanent=True)])
    clock = [T0]
    outbox = Outbox(
        state,
        {"slack": slack, "mail": mail},
        RetryPolicy(jitter=0),
        clock=lambda: clock[0],
        rng=random.Random(7),
    )
    operations.drain_done(outbox.drain(), state.outbox_depth())
    assert "watcher_outbox_depth 1.0" in scrape(operations)  # the slack retry waits, between ticks
    clock[0] += MIN
    operations.drain_done(outbox.drain(), state.outbox_depth())  # the retry goes through
    metrics = scrape(operations)
    assert "watcher_outbox_depth 0.0" in metrics
    assert 'watcher_notifications_sent_total{receiver="slack"} 2.0' in metrics
    assert 'watcher_notifications_failed_total{receiver="slack"} 1.0' in metrics
    assert 'watcher_notifications_retried_total{receiver="slack"} 1.0' in metrics
    assert 'watcher_notifications_failed_total{receiver="mail"} 1.0' in metrics
    assert not [
        line for line in metrics if line.startswith('watcher_notifications_retried_total{receiver="mail"}')
    ]
    assert not [
        line for line in metrics if line.startswith('watcher_notifications_sent_total{receiver="mail"}')
    ]


def test_the_incident_gauges_count_what_the_tick_left_open_without_reading_it_again(
    operations: Operations, state: StateStore, store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests(store, T0 - 3 * MIN, 3, "v3", 503)
    requests(store, T0 - 3 * MIN, 3, "v4", 200)
    engine = Engine([rule()], {"app": store}, state, ROUTE)
    reads = []
    read = state.incidents
    monkeypatch.setattr(state, "incidents", lambda *args, **kw: reads.append(kw) or read(*args, **kw))
    for now in (T0 - MIN, T0):
        operations.tick_done(engine.tick(now), state, now)
    assert len(reads) == 2  # the engine's read of each tick, none for the gauges
    metrics = scrape(operations)
    assert 'watcher_incidents{state="firing"} 1.0' in metrics
    assert "watcher_incidents_flapping 0.0" in metrics
    assert [i.state.value for i in read()] == ["firing"]

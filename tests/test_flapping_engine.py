"""Flapping through the engine, on the real embedded DuckDB store and the real SQLite state: a
signal hovering at its threshold gives exactly two notifications, its start and its end; the
metrics gauge counts it while it flaps; ``watcher incidents`` marks it."""

from __future__ import annotations

from pathlib import Path

from tests.test_engine import MIN, ROUTE, T0, requests, rule
from watcher.cli.incidents import collect, table
from watcher.config import Config
from watcher.engine import Engine
from watcher.incidents.model import Event, State
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.process.operations import Operations
from watcher.store.embedded import EmbeddedStore


def hovering(store: EmbeddedStore, minutes: int, then_ok: int) -> None:
    """5xx in even minutes, 200 in odd ones (the rule's 1m window sees one kind each), then 200."""
    for minute in range(minutes + then_ok):
        failing = minute < minutes and minute % 2 == 0
        requests(store, T0 + (minute - 1) * MIN, 1, "v3", 503 if failing else 200)


def test_a_flapping_signal_gives_exactly_two_notifications(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    hovering(store, minutes=12, then_ok=30)
    sent: list[Notification] = []
    flapping_now: list[float] = []
    operations = Operations(Config.model_validate({"sources": {}, "http": {"enabled": False}}), [])
    with StateStore(tmp_path / "state.sqlite") as state:
        engine = Engine([rule(**{"for": "2m"})], {"app": store}, state, ROUTE)
        for minute in range(42):
            report = engine.tick(T0 + minute * MIN)
            sent += report.notifications
            operations.tick_done(report, state, T0 + minute * MIN)
            flapping_now.append(operations.metrics.flapping._value.get())
            if minute == 10:
                shown = table(collect(state, (), T0 + minute * MIN))
    store.close()

    assert [(n.event, n.incidents[0].flapping, n.incidents[0].flap_ended) for n in sent] == [
        (Event.FIRING, True, False),
        (Event.RESOLVED, False, True),
    ]
    # Flapping started at the 4th change; the group's flush (group_wait) a minute later tells the count then.
    assert sent[0].incidents[0].note == "flapping: 5 status changes in the last 20 evaluations"
    assert sent[0].incidents[0].state is State.FIRING
    assert flapping_now[3:30] == [1.0] * 27
    assert flapping_now[30:] == [0.0] * 12
    assert "firing (flapping)" in shown


def test_with_flapping_off_every_episode_of_the_same_signal_is_told(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    hovering(store, minutes=12, then_ok=3)
    with StateStore(tmp_path / "state.sqlite") as state:
        engine = Engine([rule(flapping=False)], {"app": store}, state, ROUTE)
        events = [t.event for m in range(15) for t in engine.tick(T0 + m * MIN).transitions]
    store.close()
    assert events == [Event.FIRING, Event.RESOLVED] * 6

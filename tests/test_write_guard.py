"""A failed write at a job boundary: one log line a minute, a metric, /readyz 503 at once, and
``watcher:state-unwritable`` sent straight to the meta receiver, at most once per interval."""

from __future__ import annotations

import logging
import socket
import sqlite3
from datetime import timedelta

import pytest

from tests.notify.test_outbox import T0, Clock
from watcher.config import Route
from watcher.incidents.state import StateStore
from watcher.notify.base import Delivery, Notification, Notifier
from watcher.process.health import Health
from watcher.process.metrics import Metrics
from watcher.process.write_guard import STATE_UNWRITABLE, DirectAlert, WriteError, WriteGuard
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.schedule import DEFAULT_BACKLOG_PER_TICK, DEFAULT_CATCH_UP, due

SEC = timedelta(seconds=1)
ROUTE = Route.model_validate(
    {"receiver": "slack", "routes": [{"matchers": ["rule=~watcher:.*"], "receiver": "ops"}]}
)
DISK_FULL = sqlite3.OperationalError("database or disk is full")


class Receiver:
    """A notifier that records what it was sent; ``down`` makes it fail."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.attempts = 0
        self.down = False

    def send(self, notification: Notification) -> Delivery:
        self.attempts += 1
        if self.down:
            return Delivery(ok=False, error="connection refused")
        self.sent.append(notification)
        return Delivery(ok=True)

    def events(self) -> list[str]:
        return [n.event.value for n in self.sent]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ops() -> Receiver:
    return Receiver()


def alert_for(
    state: StateStore, receivers: dict[str, Notifier], meta_receiver: str | None = None
) -> DirectAlert:
    dispatcher = Dispatcher(state, ROUTE, meta_receiver=meta_receiver)
    return DirectAlert(dispatcher.routes, lambda: receivers)


def test_one_firing_per_interval_while_failing_then_resolved_once_writes_held(
    state: StateStore, clock: Clock, ops: Receiver
) -> None:
    slack = Receiver()
    alert = alert_for(state, {"ops": ops, "slack": slack})
    for _ in range(299):  # a failed tick every second for five minutes
        alert.failing("cannot write the state file: database or disk is full", clock())
        clock.advance(SEC)
    assert ops.events() == ["firing"]
    assert slack.sent == []  # the route tree sends watcher's alerts to ops
    (incident,) = ops.sent[0].incidents
    assert incident.rule == STATE_UNWRITABLE
    assert "database or disk is full" in incident.annotations["summary"]
    alert.failing("still full", clock() + SEC)  # five minutes after the first: a reminder
    assert ops.events() == ["firing", "firing"]
    alert.healthy(clock())
    alert.healthy(clock() + 9 * SEC)
    assert ops.events() == ["firing", "firing"]  # writes must hold for 10s first
    alert.healthy(clock() + 10 * SEC)
    alert.healthy(clock() + 11 * SEC)
    assert ops.events() == ["firing", "firing", "resolved"]
    assert state.incidents() == []  # nothing of it went through the state file


def test_a_flapping_disk_does_not_flap_the_receiver(state: StateStore, clock: Clock, ops: Receiver) -> None:
    alert = alert_for(state, {"ops": ops})
    for _ in range(20):  # 1s of failure, 3s of writes working, over and over
        alert.failing("full", clock())
        for _ in range(3):
            clock.advance(SEC)
            alert.healthy(clock())
    assert ops.events() == ["firing"]


def test_an_unreachable_receiver_is_tried_again_every_30s_not_every_tick(
    state: StateStore, clock: Clock, ops: Receiver
) -> None:
    ops.down = True
    alert = alert_for(state, {"ops": ops, "pager": Receiver()}, meta_receiver="ops")
    for _ in range(45):
        alert.failing("full", clock())
        clock.advance(SEC)
    assert ops.attempts == 2  # at 0s and 30s
    ops.down = False
    clock.advance(15 * SEC)
    alert.failing("full", clock())  # 60s
    assert ops.events() == ["firing"]


def test_a_resolve_is_not_sent_for_an_alert_nobody_was_told(
    state: StateStore, clock: Clock, ops: Receiver
) -> None:
    ops.down = True
    alert = alert_for(state, {"ops": ops})
    alert.failing("full", clock())
    ops.down = False
    for second in range(1, 20):
        alert.healthy(clock() + second * SEC)
    assert ops.sent == []
    assert alert.incident is None


def guard_for(state: StateStore, clock: Clock, ops: Receiver) -> tuple[WriteGuard, Health, Metrics]:
    health, metrics = Health(clock=clock), Metrics(process=False)
    health.rules_loaded(1)
    return WriteGuard(state, health, metrics, alert_for(state, {"ops": ops}), clock), health, metrics


def full_disk() -> None:
    raise DISK_FULL


def test_a_failed_state_write_is_one_log_line_a_minute_a_metric_and_not_ready_at_once(
    state: StateStore, clock: Clock, ops: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    guard, health, metrics = guard_for(state, clock, ops)
    caplog.set_level(logging.INFO, logger="watcher")
    for _ in range(90):
        guard.run("tick", full_disk)
        guard.run("drain", full_disk)
        clock.advance(SEC)
    lines = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in lines] == ["tick", "tick"]  # at 0s and 60s
    assert "119 more since the last line" in lines[1].getMessage()  # 59 ticks + 60 drains between
    assert not any(r.exc_info for r in caplog.records)
    assert metrics.registry.get_sample_value("watcher_state_write_errors_total") == 180
    verdict = health.readiness()
    assert not verdict.ok
    assert verdict.reasons[0].startswith("cannot write the state file for 1m30s: database or disk is full")
    assert health.liveness().ok  # the scheduler goes on; restarting would not free the disk
    assert ops.events() == ["firing"]


def test_the_first_write_that_works_makes_it_ready_again(
    state: StateStore, clock: Clock, ops: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    guard, health, _ = guard_for(state, clock, ops)
    guard.run("tick", full_disk)
    clock.advance(SEC)
    guard.run("drain", lambda: None)  # a job that wrote nothing proves nothing
    assert not health.readiness().ok
    caplog.set_level(logging.INFO, logger="watcher")
    guard.run("tick", lambda: state.commit(checkpoints={"r": T0}))
    assert health.readiness().ok
    assert any("the state file can be written again, after 1s" in r.getMessage() for r in caplog.records)
    for _ in range(11):
        clock.advance(SEC)
        guard.run("drain", lambda: None)
    assert ops.events() == ["firing", "resolved"]


def test_an_embedded_store_that_cannot_ingest_is_not_ready_until_a_tick_goes_through(
    state: StateStore, clock: Clock, ops: Receiver
) -> None:
    guard, health, metrics = guard_for(state, clock, ops)

    def ingest_fails() -> None:
        raise WriteError("embedded store app", OSError(28, "No space left on device"))

    guard.run("tick", ingest_fails)
    assert health.readiness().reasons[0].startswith("cannot write embedded store app for 0s: ")
    assert metrics.registry.get_sample_value("watcher_state_write_errors_total") == 0
    guard.run("drain", lambda: None)
    assert not health.readiness().ok
    guard.run("tick", lambda: None)
    assert health.readiness().ok


def test_any_other_failure_is_logged_once_a_minute_with_its_traceback_and_changes_no_verdict(
    state: StateStore, clock: Clock, ops: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    guard, health, _ = guard_for(state, clock, ops)
    heartbeat = health.liveness().details["heartbeat_age_seconds"]

    def bug() -> None:
        raise KeyError("oops")

    for _ in range(30):
        guard.run("tick", bug)
        clock.advance(SEC)
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.getMessage().startswith("tick failed: 'oops'")
    assert line.exc_info
    assert health.readiness().ok
    assert ops.sent == []
    assert health.liveness().details["heartbeat_age_seconds"] > heartbeat  # no beat from a broken tick


def test_the_journal_is_truncated_at_most_every_30s(state: StateStore, clock: Clock, ops: Receiver) -> None:
    guard, _, _ = guard_for(state, clock, ops)
    wal = state.path.with_name(state.path.name + "-wal")
    for second in range(61):
        guard.run("tick", lambda: state.commit(checkpoints={"r": clock()}))
        if second in (29, 59):
            assert wal.stat().st_size > 0
        clock.advance(SEC)
    assert wal.stat().st_size == 0  # truncated at 60s (and at 0s and 30s)


def test_the_catch_up_bound_covers_a_150s_gap_of_a_1s_rule_in_two_ticks() -> None:
    rule = Rule.model_validate({"name": "r", "source": "s", "every": "1s", "threshold": {"above": 1}})
    checkpoints = {"r": T0}  # the last tick that could write
    first = due([rule], T0 + 150 * SEC, checkpoints, DEFAULT_CATCH_UP, DEFAULT_BACKLOG_PER_TICK)
    assert [item.at for item in first] == [T0 + n * SEC for n in range(1, 121)]
    second = due([rule], T0 + 151 * SEC, {"r": first[-1].at}, DEFAULT_CATCH_UP, DEFAULT_BACKLOG_PER_TICK)
    assert [item.at for item in second] == [T0 + n * SEC for n in range(121, 152)]


def test_a_postgresql_state_that_cannot_be_reached_is_a_state_write_failure(
    state: StateStore, clock: Clock, ops: Receiver
) -> None:
    # A real psycopg error: nothing listens on the port (the state database is down).
    psycopg = pytest.importorskip("psycopg")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def database_down() -> None:
        psycopg.connect(f"postgresql://watcher@127.0.0.1:{port}/watcher", connect_timeout=2)

    guard, health, metrics = guard_for(state, clock, ops)
    guard.run("tick", database_down)
    assert metrics.registry.get_sample_value("watcher_state_write_errors_total") == 1
    assert health.readiness().reasons[0].startswith("cannot write the state file")
    assert ops.events() == ["firing"]  # watcher:state-unwritable, sent without the database

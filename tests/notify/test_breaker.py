"""The per-receiver circuit breaker, alone (on both state backends) and in the outbox (real state
file, recording notifier)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import StateAt
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Delivery, Notification
from watcher.notify.breaker import CircuitBreaker
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.state.postgres import PostgresBackend

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
OK = Delivery(ok=True)
DOWN = Delivery(ok=False, error="HTTP 503")
LIMITED = Delivery(ok=False, error="ratelimited", retry_after=10)


@pytest.fixture
def circuits(state_at: StateAt) -> Iterator[StateStore]:
    """Where the circuits live: a state on each backend."""
    with state_at.open() as opened:
        yield opened


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[StateStore, StateStore]]:
    """Two replicas' connections to one shared PostgreSQL state."""
    with StateStore(PostgresBackend(postgres_url)) as one, StateStore(PostgresBackend(postgres_url)) as two:
        yield one, two


def test_a_retry_after_opens_the_circuit_for_that_long(circuits: StateStore) -> None:
    breaker = CircuitBreaker(circuits)
    breaker.record("slack", LIMITED, T0)
    assert not breaker.allows("slack", T0 + 9 * SEC)
    assert breaker.allows("slack", T0 + 10 * SEC)
    assert breaker.allows("email", T0)  # per receiver


def test_failures_open_it_and_it_probes_once_per_cooldown_without_growing(circuits: StateStore) -> None:
    # A cooldown that doubled per opening left messages waiting 80 s after a 90 s outage ended.
    breaker = CircuitBreaker(circuits, threshold=2, cooldown=5 * SEC)
    breaker.record("slack", DOWN, T0)
    assert breaker.allows("slack", T0)
    breaker.record("slack", DOWN, T0)
    assert breaker.open_until("slack") == T0 + 5 * SEC
    for probe in range(1, 20):  # a long outage: one probe every cooldown, never longer
        at = T0 + 5 * probe * SEC
        assert not breaker.allows("slack", at - SEC / 10)
        assert breaker.allows("slack", at)  # half-open: this attempt is the probe ...
        assert not breaker.allows("slack", at)  # ... and nothing else goes while it is out
        breaker.record("slack", DOWN, at)
        assert breaker.open_until("slack") == at + 5 * SEC
    assert breaker.allows("slack", T0 + 100 * SEC)
    assert breaker.record("slack", OK, T0 + 100 * SEC)  # recovered: closed on the first success
    assert breaker.open_until("slack") is None
    assert breaker.allows("slack", T0 + 100 * SEC)
    assert not breaker.record("slack", OK, T0 + 101 * SEC)  # a success after successes is no recovery


def test_bad_settings_are_refused(state: StateStore) -> None:
    with pytest.raises(ValueError, match="threshold must be at least 1, got 0"):
        CircuitBreaker(state, threshold=0)
    with pytest.raises(ValueError, match="circuit breaker needs a cooldown longer than 0s"):
        CircuitBreaker(state, cooldown=0 * SEC)


@dataclass
class Slack:
    script: list[Delivery] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def send(self, notification: Notification) -> Delivery:
        self.sent.append(notification.id)
        return self.script.pop(0) if self.script else OK


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def notification(notification_id: str) -> Notification:
    group = {"model": notification_id}
    incident = Incident(
        fingerprint=fingerprint("r", group),
        rule="r",
        group=group,
        labels={},
        annotations={},
        severity="warning",
        state=State.FIRING,
        value=1.0,
        threshold=0.5,
        started_at=T0,
    )
    return Notification(notification_id, "slack", Event.FIRING, (incident,), T0, f"t-{notification_id}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as opened:
        opened.commit(notifications=[notification(f"n{i}") for i in range(5)])
        yield opened


def test_a_rate_limited_receiver_costs_one_attempt_not_one_per_notification(store: StateStore) -> None:
    clock, slack = Clock(), Slack(script=[LIMITED, LIMITED])
    outbox = Outbox(store, {"slack": slack}, RetryPolicy(max_attempts=3, jitter=0), clock=clock,
                    breaker=CircuitBreaker(store))  # fmt: skip
    report = outbox.drain()
    assert (report.retried, report.deferred, slack.sent) == (1, 4, ["n0"])
    clock.now = T0 + 10 * SEC
    report = outbox.drain()
    assert (report.retried, report.deferred, slack.sent) == (1, 4, ["n0", "n0"])
    clock.now = T0 + 20 * SEC
    report = outbox.drain()
    # Two 429s on n0 and none lost: max_attempts counts real attempts only.
    assert (report.sent, report.dead, sorted(report.delivered_to)) == (5, 0, ["slack"])
    assert store.outbox_depth() == 0


def test_rate_limited_attempts_never_dead_letter_by_count(store: StateStore) -> None:
    clock, slack = Clock(), Slack(script=[LIMITED] * 5)
    outbox = Outbox(store, {"slack": slack}, RetryPolicy(max_attempts=2, jitter=0), clock=clock,
                    breaker=CircuitBreaker(store))  # fmt: skip
    for _ in range(6):
        report = outbox.drain()
        assert report.dead == 0
        clock.now += timedelta(minutes=20)
    assert (slack.sent.count("n0"), store.outbox_depth(), store.dead_letters()) == (6, 0, [])


def test_retry_after_does_not_escalate_the_cooldown(circuits: StateStore) -> None:
    breaker = CircuitBreaker(circuits, threshold=1, cooldown=60 * SEC)
    for second in range(5):
        breaker.record("slack", Delivery(ok=False, error="429", retry_after=1), T0 + second * SEC)
    assert breaker.open_until("slack") == T0 + 5 * SEC


def test_replicas_share_their_circuits_and_only_one_of_them_probes(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = (CircuitBreaker(state, threshold=3, cooldown=5 * SEC) for state in replicas)
    one.record("slack", DOWN, T0)
    two.record("slack", DOWN, T0)
    assert two.allows("slack", T0)  # two failures in a row, at two replicas: still closed
    one.record("slack", DOWN, T0)
    assert not two.allows("slack", T0 + SEC)  # the third, at replica one, opened it for both
    assert [one.allows("slack", T0 + 5 * SEC), two.allows("slack", T0 + 5 * SEC)] == [True, False]
    assert one.record("slack", OK, T0 + 6 * SEC)  # the probe went through: closed for both
    assert two.allows("slack", T0 + 6 * SEC)


def test_a_success_at_one_replica_does_not_cut_another_replicas_retry_after_short(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = (CircuitBreaker(state) for state in replicas)
    one.record("slack", DOWN, T0)
    assert two.allows("slack", T0)  # a send starts at replica two ...
    one.record("slack", LIMITED, T0 + SEC)  # ... replica one is told to wait 10 s ...
    assert not two.record("slack", OK, T0 + 2 * SEC)  # ... two's send, started before, got through
    assert two.open_until("slack") == T0 + 11 * SEC
    assert not one.allows("slack", T0 + 10 * SEC)

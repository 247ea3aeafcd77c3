"""The outbox drainer on a real state file, with recording notifiers and a hand-driven clock."""

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StateAt
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Delivery, Notification
from watcher.notify.outbox import DrainReport, Outbox, RetryPolicy, redact

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
NO_JITTER = RetryPolicy(jitter=0)
WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@dataclass
class Recorder:
    """A notifier that answers from a script (then succeeds) and records what it was sent."""

    script: list[Delivery | Exception] = field(default_factory=list)
    sent: list[Notification] = field(default_factory=list)

    def send(self, notification: Notification) -> Delivery:
        self.sent.append(notification)
        outcome = self.script.pop(0) if self.script else Delivery(ok=True, ref={"ts": notification.id})
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.sent]


def incident(name: str = "v3") -> Incident:
    group = {"model_version": name}
    return Incident(
        fingerprint=fingerprint("api-5xx", group),
        rule="api-5xx",
        group=group,
        labels={"rule": "api-5xx"},
        annotations={},
        severity="critical",
        state=State.FIRING,
        value=0.2,
        threshold=0.05,
        started_at=T0,
        fired_at=T0,
    )


def notification(id: str, thread: str = "t1", at: datetime = T0, receiver: str = "slack") -> Notification:
    return Notification(id, receiver, Event.FIRING, (incident(),), at, thread)


@pytest.fixture
def store(state_at: StateAt) -> Iterator[StateStore]:
    """The outbox on each backend (tests/conftest.py: SQLite, PostgreSQL)."""
    with state_at.open() as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


def enqueue(store: StateStore, *notifications: Notification) -> None:
    store.commit([incident()], [], notifications)


def outbox(store: StateStore, clock: Clock, policy: RetryPolicy = NO_JITTER, **notifiers: Recorder) -> Outbox:
    return Outbox(store, notifiers, policy, clock=clock, rng=random.Random(7))


def next_attempt(store: StateStore, id: str) -> datetime:
    item = store.outbox_item(id)
    assert item is not None
    return item.next_attempt_at


# ---------------------------------------------------------------------- delivery


def test_due_notifications_are_sent_once_and_marked_delivered(store: StateStore, clock: Clock) -> None:
    slack = Recorder()
    enqueue(store, notification("n1", "a"), notification("n2", "b"))
    drainer = outbox(store, clock, slack=slack)
    assert drainer.drain() == DrainReport(sent=2)
    assert drainer.drain() == DrainReport()
    assert slack.ids == ["n1", "n2"]
    assert store.outbox_depth() == 0


def test_a_restart_does_not_resend_what_was_delivered(state_at: StateAt, clock: Clock) -> None:
    slack = Recorder()
    with state_at.open() as store:
        enqueue(store, notification("n1"))
        outbox(store, clock, slack=slack).drain()
    with state_at.open() as store:
        enqueue(store, notification("n1"))  # the restarted daemon re-evaluates the same tick
        clock.advance(timedelta(days=1))
        assert outbox(store, clock, slack=slack).drain().sent == 0
    assert slack.ids == ["n1"]


def test_a_pending_notification_is_sent_after_a_restart(state_at: StateAt, clock: Clock) -> None:
    with state_at.open() as store:
        enqueue(store, notification("n1"))
    slack = Recorder()
    with state_at.open() as store:
        outbox(store, clock, slack=slack).drain()
    assert slack.ids == ["n1"]


def test_a_notification_delivered_by_another_drainer_meanwhile_is_not_sent_again(
    state_at: StateAt, store: StateStore, clock: Clock
) -> None:
    other_process = state_at.open()
    enqueue(store, notification("n1", "a"), notification("n2", "b", receiver="email"))

    class DeliversN2Elsewhere(Recorder):
        def send(self, notification: Notification) -> Delivery:
            other_process.mark_delivered("n2", clock(), None)  # another drainer got there first
            return super().send(notification)

    slack, email = DeliversN2Elsewhere(), Recorder()
    report = outbox(store, clock, slack=slack, email=email).drain()
    other_process.close()
    assert (report.sent, report.skipped, email.ids) == (1, 1, [])


def test_a_claimed_notification_whose_drainer_died_is_retried_after_the_lease(
    store: StateStore, clock: Clock
) -> None:
    enqueue(store, notification("n1"))
    assert store.claim("n1", T0, T0 + NO_JITTER.lease)  # then the process was killed mid-send
    slack = Recorder()
    drainer = outbox(store, clock, slack=slack)
    assert drainer.drain().sent == 0
    clock.advance(NO_JITTER.lease)
    assert drainer.drain().sent == 1


def test_max_items_bounds_one_drain(store: StateStore, clock: Clock) -> None:
    enqueue(store, *(notification(f"n{i}", f"t{i}") for i in range(5)))
    slack = Recorder()
    drainer = outbox(store, clock, slack=slack)
    assert drainer.drain(max_items=2).sent == 2
    assert drainer.drain().sent == 3
    assert slack.ids == [f"n{i}" for i in range(5)]


def test_a_retry_that_falls_due_during_a_slow_drain_waits_for_the_next_drain(
    store: StateStore, clock: Clock
) -> None:
    enqueue(store, notification("n1", "a"), notification("n2", "b"))

    class Slow(Recorder):
        def send(self, notification: Notification) -> Delivery:
            clock.advance(5 * SEC)  # longer than the 2s backoff of the first failure
            return super().send(notification)

    slack = Slow(script=[Delivery(ok=False, error="HTTP 500")])
    drainer = outbox(store, clock, slack=slack)
    assert drainer.drain() == DrainReport(sent=1, retried=1)
    assert drainer.drain() == DrainReport(sent=1)
    assert slack.ids == ["n1", "n2", "n1"]


# ---------------------------------------------------------------------- threads


def test_a_thread_reply_carries_the_ref_of_the_threads_first_message(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("first"))
    enqueue(store, notification("resolved", at=T0 + SEC))
    slack = Recorder(script=[Delivery(ok=True, ref={"channel": "C1", "ts": "111.1"})])
    clock.advance(SEC)
    assert outbox(store, clock, slack=slack).drain().sent == 2
    assert [n.thread_ref for n in slack.sent] == [None, {"channel": "C1", "ts": "111.1"}]


def test_a_thread_reply_waits_for_its_first_message_to_be_delivered(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("first", "t"), notification("reply", "t", at=T0 + SEC))
    enqueue(store, notification("other", "u"))
    slack = Recorder(script=[Delivery(ok=False, error="HTTP 503")])
    drainer = outbox(store, clock, slack=slack)
    assert drainer.drain() == DrainReport(sent=1, retried=1)
    assert slack.ids == ["first", "other"]
    clock.advance(2 * SEC)
    assert drainer.drain().sent == 2
    assert slack.ids == ["first", "other", "first", "reply"]
    assert slack.sent[-1].thread_ref == {"ts": "first"}


# ---------------------------------------------------------------------- failures


def test_failures_back_off_exponentially_up_to_the_cap(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1"))
    policy = RetryPolicy(jitter=0, max_backoff=timedelta(seconds=20), max_attempts=100)
    slack = Recorder(script=[Delivery(ok=False, error="HTTP 500")] * 6)
    drainer = outbox(store, clock, policy, slack=slack)
    waits = []
    for _ in range(6):
        assert drainer.drain().retried == 1
        waits.append((next_attempt(store, "n1") - clock()).total_seconds())
        clock.advance(timedelta(seconds=waits[-1] - 0.001))
        assert drainer.drain() == DrainReport()  # not due a millisecond early
        clock.advance(timedelta(milliseconds=1))
    assert waits == [2, 4, 8, 16, 20, 20]
    assert drainer.drain().sent == 1


def test_jitter_shortens_each_wait_by_at_most_its_fraction() -> None:
    policy, rng = RetryPolicy(), random.Random(1)
    for failures, raw in [(1, 2.0), (2, 4.0), (3, 8.0), (12, 600.0), (5000, 600.0)]:
        waits = [policy.backoff(failures, rng).total_seconds() for _ in range(200)]
        assert raw * 0.8 <= min(waits) < max(waits) <= raw
        assert max(waits) - min(waits) > raw * 0.15  # they do spread out


def test_retry_after_replaces_the_backoff(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1", "a"), notification("n2", "b"))
    slack = Recorder(
        script=[
            Delivery(ok=False, error="429", retry_after=30),
            Delivery(ok=False, error="429", retry_after=0.5),
        ]
    )
    outbox(store, clock, slack=slack).drain()
    assert next_attempt(store, "n1") == T0 + 30 * SEC
    assert next_attempt(store, "n2") == T0 + 0.5 * SEC  # shorter than the 2 s backoff: Slack knows best


def test_retry_after_is_not_stacked_on_a_grown_backoff(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1"))
    slack = Recorder(
        script=[*[Delivery(ok=False, error="HTTP 503")] * 6, Delivery(ok=False, error="429", retry_after=3)]
    )
    box = outbox(store, clock, slack=slack)
    for _ in range(6):  # the backoff grows to 64 s over six failures ...
        box.drain()
        clock.now = next_attempt(store, "n1")
    assert clock.now - T0 == (2 + 4 + 8 + 16 + 32 + 64) * SEC
    box.drain()  # ... but Slack's Retry-After is the wait, not max(backoff, Retry-After)
    assert next_attempt(store, "n1") == clock.now + 3 * SEC


def test_a_permanent_failure_is_a_dead_letter_at_once(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1"))
    slack = Recorder(script=[Delivery(ok=False, error="channel_not_found", permanent=True)])
    report = outbox(store, clock, slack=slack).drain()
    assert (report.dead, report.failed, report.dead_letters) == (1, 1, ["n1"])
    (dead,) = store.dead_letters()
    assert (dead.attempts, dead.last_error) == (1, "permanent failure: channel_not_found")


def test_dead_letter_after_max_attempts(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1"))
    slack = Recorder(script=[Delivery(ok=False, error="HTTP 500")] * 3)
    drainer = outbox(store, clock, RetryPolicy(max_attempts=3, jitter=0), slack=slack)
    reports = []
    for _ in range(4):
        reports.append(drainer.drain())
        clock.advance(timedelta(minutes=10))
    assert [(r.retried, r.dead) for r in reports] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    (dead,) = store.dead_letters()
    assert (dead.attempts, dead.last_error) == (3, "gave up after 3 attempts: HTTP 500")
    assert len(slack.sent) == 3


def test_dead_letter_when_a_failure_comes_after_max_age(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1"))
    clock.advance(timedelta(hours=24))  # e.g. the daemon was down for a day: one more try is still made
    slack = Recorder(script=[Delivery(ok=False, error="HTTP 502")])
    assert outbox(store, clock, slack=slack).drain().dead == 1
    assert [d.last_error for d in store.dead_letters()] == ["gave up after 1d: HTTP 502"]


def test_a_notifier_that_raises_is_a_retryable_failure_that_stops_nothing(
    store: StateStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(store, notification("n1", "a"), notification("n2", "b"))
    slack = Recorder(script=[RuntimeError("socket closed")])
    with caplog.at_level(logging.WARNING, logger="watcher.outbox"):
        report = outbox(store, clock, slack=slack).drain()
    assert (report.sent, report.retried) == (1, 1)
    item = store.outbox_item("n1")
    assert item is not None
    assert (item.status, item.last_error) == ("pending", "RuntimeError: socket closed")
    (line,) = caplog.messages
    assert line == (
        f"delivery failed: receiver=slack notification=n1 incidents={incident().fingerprint} attempt=1 "
        "retry in 2s: RuntimeError: socket closed"
    )
    (record,) = caplog.records  # the JSON log line carries them as fields
    fields = (record.rule, record.fingerprint, record.receiver)  # type: ignore[attr-defined]
    assert fields == ("api-5xx", incident().fingerprint, "slack")


def test_urls_in_errors_are_cut_so_secrets_never_reach_logs_or_the_state_file(
    store: StateStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(store, notification("n1", "a"), notification("n2", "b"))
    slack = Recorder(
        script=[
            ConnectionError(f"Max retries exceeded with url: /services/T000/B000/XXXXSECRET ({WEBHOOK})"),
            Delivery(
                ok=False, error="401 for url: https://user:XXXXSECRET@api.twilio.com/x?token=XXXXSECRET"
            ),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="watcher.outbox"):
        outbox(store, clock, slack=slack).drain()
    assert "SECRET" not in caplog.text
    errors = [item.last_error for item in (store.outbox_item("n1"), store.outbox_item("n2")) if item]
    assert errors == [
        "ConnectionError: Max retries exceeded with url: /<redacted> (https://hooks.slack.com/<redacted>)",
        "401 for url: https://api.twilio.com/<redacted>",
    ]


def test_redact_keeps_plain_errors() -> None:
    assert redact("channel_not_found") == "channel_not_found"


def test_an_unknown_receiver_is_a_dead_letter_with_a_clear_error(
    store: StateStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(store, notification("n1", receiver="pager"))
    with caplog.at_level(logging.ERROR, logger="watcher.outbox"):
        report = outbox(store, clock, slack=Recorder()).drain()
    assert report.dead_letters == ["n1"]
    assert [d.last_error for d in store.dead_letters()] == [
        "permanent failure: unknown receiver 'pager' (known: slack)"
    ]
    assert "receiver=pager notification=n1" in caplog.text


def test_a_failure_without_a_message_still_says_something(store: StateStore, clock: Clock) -> None:
    enqueue(store, notification("n1"))
    outbox(store, clock, slack=Recorder(script=[Delivery(ok=False)])).drain()
    item = store.outbox_item("n1")
    assert item is not None
    assert item.last_error == "failed without an error message"


def test_the_report_counts_sent_retried_and_dead_per_receiver(store: StateStore, clock: Clock) -> None:
    enqueue(
        store,
        notification("n1", "a"),
        notification("n2", "b"),
        notification("n3", "c"),
        notification("m1", "d", receiver="mail"),
        notification("p1", "e", receiver="pager"),  # no such receiver: a dead letter
    )
    slack = Recorder(script=[Delivery(ok=False, error="HTTP 500")])
    mail = Recorder(script=[Delivery(ok=False, error="550 no such user", permanent=True)])
    report = outbox(store, clock, slack=slack, mail=mail).drain()
    assert (report.sent, report.retried, report.dead) == (2, 1, 2)
    assert report.sent_to == {"slack": 2}
    assert report.retried_to == {"slack": 1}
    assert report.dead_to == {"mail": 1, "pager": 1}


# ---------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1, got 0"),
        ({"base": timedelta(0)}, "backoff needs 0 < base <= max_backoff"),
        ({"base": timedelta(hours=1)}, "backoff needs 0 < base <= max_backoff"),
        ({"factor": 0.5}, "factor must be at least 1, got 0.5"),
        ({"jitter": 1.0}, r"jitter is a fraction in \[0, 1\), got 1.0"),
        ({"lease": timedelta(0)}, "lease must be longer than 0s"),
    ],
)
def test_a_bad_retry_policy_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_a_shutdown_drain_starts_no_send_after_its_deadline(store: StateStore, clock: Clock) -> None:
    enqueue(store, *(notification(f"n{i}", thread=f"t{i}") for i in range(5)))

    @dataclass
    class Slow(Recorder):
        def send(self, notification: Notification) -> Delivery:
            clock.advance(4 * SEC)  # each send takes 4s
            return super().send(notification)

    slack = Slow()
    report = outbox(store, clock, slack=slack).drain(until=T0 + 10 * SEC)
    assert (report.sent, slack.ids) == (3, ["n0", "n1", "n2"])  # started at 0s, 4s and 8s
    assert store.outbox_depth() == 2  # kept for the next start, not lost

"""Several replicas draining one outbox on a shared PostgreSQL state: each notification sent once.

Each replica is its own ``StateStore`` (its own connection to a real PostgreSQL server) with its
own ``Outbox`` and notifiers, as in another process; they race on the same rows from two threads
against the fake Slack (``slack_server.py``) and a webhook endpoint, both on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hook_server import Hook
from pydantic import SecretStr
from samples import RULE, incident, resolved
from slack_server import SlackServer

from watcher.config import SlackReceiver, WebhookReceiver
from watcher.incidents.model import Event
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification, Notifier
from watcher.notify.breaker import CircuitBreaker
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.slack import SlackNotifier
from watcher.notify.webhook import WebhookNotifier
from watcher.state.postgres import PostgresBackend
from watcher.templates import Templates

SEC = timedelta(seconds=1)
THREADS = 12


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[StateStore, StateStore]]:
    """Two replicas' connections to one shared state."""
    with StateStore(PostgresBackend(postgres_url)) as one, StateStore(PostgresBackend(postgres_url)) as two:
        yield one, two


def notifiers(slack: SlackServer, hook: Hook) -> dict[str, Notifier]:
    """A replica's own notifiers (nothing shared in memory with the other replica)."""
    templates = Templates(rules=[RULE])
    settings = SlackReceiver(
        token=SecretStr(slack.token), channel="#alerts", base_url=slack.base_url, pace=None
    )
    webhook = WebhookReceiver.model_validate({"url": hook.url})
    return {"slack": SlackNotifier(settings, templates), "hook": WebhookNotifier(webhook, templates)}


def storm(at: datetime) -> list[Notification]:
    """For each receiver, THREADS incident threads: a FIRING message and its RESOLVED reply."""
    sent = []
    for receiver in ("slack", "hook"):
        for n in range(THREADS):
            fired, ended = (
                incident(fingerprint=f"f{n}", details={}),
                resolved(fingerprint=f"f{n}", details={}),
            )
            for event, told in ((Event.FIRING, fired), (Event.RESOLVED, ended)):
                nid = f"{receiver}-{n}-{event.value}"
                sent.append(Notification(nid, receiver, event, (told,), at, thread_key=f"thread-{n}"))
    return sent


def drain_together(*outboxes: Outbox) -> None:
    """Every outbox drains at the same time, again and again, until none has anything left."""
    start = threading.Barrier(len(outboxes))

    def run(outbox: Outbox) -> None:
        start.wait()
        while outbox.drain().attempted:
            pass

    threads = [threading.Thread(target=run, args=(outbox,)) for outbox in outboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_two_replicas_racing_on_one_outbox_send_each_notification_once_and_in_its_thread(
    replicas: tuple[StateStore, StateStore], slack_server: SlackServer, hook: Hook
) -> None:
    one, two = replicas
    one.commit(notifications=storm(now()))
    two.commit(notifications=storm(now()))  # the same tick committed by the other replica: a no-op
    assert one.outbox_depth() == 4 * THREADS

    outboxes = [Outbox(state, notifiers(slack_server, hook), RetryPolicy(), clock=now) for state in replicas]
    drain_together(*outboxes)

    posted = Counter(_id(call.body) for call in slack_server.calls_to("chat.postMessage"))
    hooked = Counter(headers["Idempotency-Key"] for _, headers, _ in hook.requests)
    assert posted == Counter({f"slack-{n}-{e}": 1 for n in range(THREADS) for e in ("firing", "resolved")})
    assert hooked == Counter({f"hook-{n}-{e}": 1 for n in range(THREADS) for e in ("firing", "resolved")})
    # Whichever replica sent it, a RESOLVED reply is in the thread its FIRING message started.
    for n in range(THREADS):
        ref = two.thread_ref("slack", f"thread-{n}")
        assert ref is not None
        replies = slack_server.calls_to("chat.postMessage")
        [reply] = [call.body for call in replies if _id(call.body) == f"slack-{n}-resolved"]
        assert reply["thread_ts"] == ref["ts"]
    assert one.outbox_depth() == 0


def _id(body: dict[str, object]) -> str:
    metadata = body["metadata"]
    assert isinstance(metadata, dict)
    return str(metadata["event_payload"]["notification_id"])


def test_a_replica_starting_leaves_a_live_replicas_claim_alone(
    replicas: tuple[StateStore, StateStore], slack_server: SlackServer, hook: Hook
) -> None:
    one, two = replicas
    at = now()
    one.commit(notifications=storm(at)[:1])
    assert one.claim("slack-0-firing", at, at + 120 * SEC)  # replica one is sending it

    assert two.release_claims(at + SEC) == 0  # replica two starts: the claim is not its to release
    report = Outbox(two, notifiers(slack_server, hook), clock=lambda: at + SEC).drain()
    assert (report.attempted, slack_server.calls_to("chat.postMessage")) == (0, [])
    # Once the claim's lease ran out (its replica died), a starting replica takes it over.
    assert two.release_claims(at + 121 * SEC) == 1


def test_a_drainer_whose_lease_ran_out_cannot_reschedule_the_send_another_took_over(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    at = now()
    one.commit(notifications=storm(at)[:1])
    assert one.claim("slack-0-firing", at, at + 10 * SEC)
    assert two.claim("slack-0-firing", at + 11 * SEC, at + 130 * SEC)  # one's lease ran out
    # One's slow send finally fails with "retry in 1s": two's send is still in flight.
    one.mark_failed("slack-0-firing", at + 12 * SEC, "HTTP 429", at + 13 * SEC)
    assert one.due_notifications(at + 14 * SEC) == []
    assert two.claim("slack-0-firing", at + 14 * SEC, at + 60 * SEC) is None
    item = two.outbox_item("slack-0-firing")
    assert item is not None
    assert item.attempts == 0


def test_a_notification_enqueued_again_by_another_replica_after_delivery_is_not_sent_again(
    replicas: tuple[StateStore, StateStore], slack_server: SlackServer, hook: Hook
) -> None:
    one, two = replicas
    first = storm(now())[:1]
    one.commit(notifications=first)
    assert Outbox(one, notifiers(slack_server, hook), clock=now).drain().sent == 1
    two.commit(notifications=first)  # replayed by the other replica: the id derives from its cause
    assert Outbox(two, notifiers(slack_server, hook), clock=now).drain().attempted == 0
    assert len(slack_server.calls_to("chat.postMessage")) == 1
    item = two.outbox_item(first[0].id)
    assert item is not None
    assert item.status == "delivered"


def test_a_429_one_replica_got_holds_the_receiver_back_at_every_replica_until_its_retry_after(
    replicas: tuple[StateStore, StateStore], slack_server: SlackServer, hook: Hook
) -> None:
    at = now()
    times = [at, at + SEC]  # each replica's clock
    replicas[0].commit(notifications=[n for n in storm(at) if n.event is Event.FIRING][:4])
    one, two = (
        Outbox(
            state, notifiers(slack_server, hook), clock=lambda i=i: times[i], breaker=CircuitBreaker(state)
        )
        for i, state in enumerate(replicas)
    )
    slack_server.rate_limit(times=1, retry_after=30)
    assert (one.drain().retried, len(slack_server.calls_to("chat.postMessage"))) == (1, 1)  # the 429
    report = two.drain()  # replica two, a second later, holds its three due ones back
    assert (report.attempted, report.deferred, len(slack_server.calls_to("chat.postMessage"))) == (0, 3, 1)
    times[1] = at + 30 * SEC  # when Slack said it takes messages again
    assert two.drain().sent == 4
    assert len(slack_server.calls_to("chat.postMessage")) == 5

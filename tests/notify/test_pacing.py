"""Pacing: a storm to one Slack channel is delivered in order, without 429s from Slack's channel limit.

The fake Slack enforces a per-channel rate like Slack's (1 message a second there; scaled up here so
the storm takes seconds, with watcher's pace set to match). Real state file, outbox, delivery
workers and SlackNotifier (slack-sdk).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from slack_server import SlackServer

from watcher.config import SlackReceiver
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.pacing import Pace, Pacer
from watcher.notify.slack import SlackNotifier
from watcher.notify.workers import DeliveryWorkers
from watcher.templates import Templates

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STORM = 200
RATE = 40  # messages a second the fake channel accepts (Slack: 1), and watcher's pace


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    pacer, pace = Pacer(), Pace(rate=1, burst=3)
    assert [pacer.take("C1", pace, T0) for _ in range(4)] == [True, True, True, False]
    assert pacer.ready_at("C1", pace, T0) == T0 + timedelta(seconds=1)
    assert pacer.take("C2", pace, T0)  # per channel
    assert not pacer.take("C1", pace, T0 + timedelta(seconds=0.9))
    assert pacer.take("C1", pace, T0 + timedelta(seconds=1))
    with pytest.raises(ValueError, match="a pace needs a rate above 0 per second, got 0"):
        Pace(rate=0)


def incident(index: int) -> Incident:
    group = {"svc": f"s{index:03d}"}
    return Incident(
        fingerprint=fingerprint("api-5xx", group),
        rule="api-5xx",
        group=group,
        labels={},
        annotations={"summary": f"storm {index:03d}"},
        severity="critical",
        state=State.FIRING,
        value=0.2,
        threshold=0.05,
        started_at=T0,
        fired_at=T0,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as opened:
        now = datetime.now(UTC)
        opened.commit(
            notifications=[
                Notification(
                    f"n{i:03d}",
                    "slack",
                    Event.FIRING,
                    (incident(i),),
                    now + i * timedelta(microseconds=1),
                    f"t{i}",
                )
                for i in range(STORM)
            ]
        )
        yield opened


def storm(store: StateStore, server: SlackServer, pace: dict[str, float] | None) -> float:
    """Deliver the storm with the delivery workers; the seconds it took."""
    server.limit_channel_rate(per_second=RATE, burst=3)
    settings = SlackReceiver(
        token=SecretStr(server.token), channel="#alerts", base_url=server.base_url, charts=False, pace=pace
    )
    outbox = Outbox(
        store,
        {"slack": SlackNotifier(settings, Templates())},
        RetryPolicy(jitter=0),
        clock=lambda: datetime.now(UTC),
    )
    workers = DeliveryWorkers(outbox, store, lambda: datetime.now(UTC), idle=0.2)
    started = time.monotonic()
    workers.sync(["slack"])
    deadline = time.monotonic() + 60
    while store.outbox_depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.stop(None, join=timedelta(seconds=10))
    return time.monotonic() - started


def test_a_storm_to_one_channel_goes_in_order_without_a_single_429(
    store: StateStore, slack_server: SlackServer
) -> None:
    # Paced a little below the channel's limit, as the default (1/s) is below Slack's: requests
    # arrive with the jitter of the network and the scheduler, not at the instants they were paced.
    seconds = storm(store, slack_server, {"per_second": 0.9 * RATE, "burst": 2})
    assert store.outbox_depth() == 0
    assert slack_server.rate_limited == 0  # pacing alone kept under the channel's limit
    texts = [post["text"] for post in slack_server.posts]
    assert len(texts) == STORM
    assert [text.split("storm ")[1][:3] for text in texts] == [f"{i:03d}" for i in range(STORM)]  # in order
    assert seconds >= (STORM - 2) / (0.9 * RATE) * 0.9  # paced, not sent at once


def test_without_a_pace_the_same_storm_is_answered_429(store: StateStore, slack_server: SlackServer) -> None:
    storm(store, slack_server, None)
    assert store.outbox_depth() == 0  # delivered all the same (Retry-After), but Slack said 429
    assert slack_server.rate_limited > 0

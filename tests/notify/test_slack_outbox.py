"""Slack through the real outbox: exactly once after a crash, and threads that stay right.

A send cut short by a crash is looked up in Slack before it is repeated.

Real state file, the real outbox and SlackNotifier (slack-sdk) against the fake Slack on 127.0.0.1.
A crash is played exactly: the outbox claims the row, the request reaches Slack, and the process
"dies" before recording the answer (the claim is never finished); the next daemon releases the
claim (``release_claims``) and drains with a fresh notifier, as after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
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
from watcher.notify.slack import SlackNotifier
from watcher.rules.models import Rule
from watcher.templates import Templates

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
RULE = Rule.model_validate(
    {"name": "api-5xx", "source": "app", "signal": {"count": {}}, "threshold": {"above": 1}}
)
SERIES = [[(T0 - timedelta(minutes=30 - i)).isoformat(), 0.02 if i < 16 else 0.07] for i in range(30)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(slack_server: SlackServer) -> Clock:
    clock = Clock()
    slack_server.clock = lambda: clock.now.timestamp()  # Slack's ts follow the same clock
    return clock


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as opened:
        yield opened


def slack(server: SlackServer, channel: str = "#alerts") -> SlackNotifier:
    """A new notifier each time: after a restart nothing is remembered in memory."""
    settings = SlackReceiver(token=SecretStr(server.token), channel=channel, base_url=server.base_url)
    return SlackNotifier(settings, Templates(rules=[RULE]))


def incident(state: State = State.FIRING, series: bool = False) -> Incident:
    group = {"svc": "a"}
    return Incident(
        fingerprint=fingerprint("api-5xx", group),
        rule="api-5xx",
        group=group,
        labels={"rule": "api-5xx"},
        annotations={"summary": "5xx"},
        severity="critical",
        state=state,
        value=0.2,
        threshold=0.05,
        started_at=T0,
        fired_at=T0,
        resolved_at=T0 + 60 * SEC if state is State.RESOLVED else None,
        details={"series": SERIES} if series else {},
    )


def notification(nid: str, event: Event = Event.FIRING, series: bool = False) -> Notification:
    state = State.RESOLVED if event is Event.RESOLVED else State.FIRING
    return Notification(nid, "slack", event, (incident(state, series),), T0, "thread-1")


def outbox(store: StateStore, server: SlackServer, clock: Clock) -> Outbox:
    return Outbox(store, {"slack": slack(server)}, RetryPolicy(jitter=0), clock=clock)


def crash_mid_send(store: StateStore, server: SlackServer, clock: Clock, nid: str, reached: bool) -> None:
    """The daemon claims ``nid``; its request reaches Slack (or not) and the daemon dies before it
    records anything. Then the next daemon starts on the same file."""
    assert store.claim(nid, clock.now, clock.now + timedelta(minutes=2))
    if reached:
        item = store.outbox_item(nid)
        assert item is not None
        notification = item.notification
        if notification.thread_ref is None and notification.event is not Event.FIRING:
            ref = store.thread_ref("slack", notification.thread_key)
            notification = Notification(**{**notification.__dict__, "thread_ref": ref})
        assert slack(server).send(notification).ok
    clock.now += 3 * SEC  # the restart
    assert store.release_claims(clock.now) == 1


def status(store: StateStore, nid: str) -> str:
    item = store.outbox_item(nid)
    return "missing" if item is None else item.status


def posts(server: SlackServer) -> list[dict[str, object]]:
    return [call.body for call in server.calls_to("chat.postMessage")]


def test_a_post_slack_got_before_the_crash_is_found_not_posted_again(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    store.commit(notifications=[notification("n1", series=True)])
    crash_mid_send(store, slack_server, clock, "n1", reached=True)
    report = outbox(store, slack_server, clock).drain()
    assert len(posts(slack_server)) == 1  # the lookup found it: no second post
    assert report.reconciled == 1
    assert status(store, "n1") == "delivered"
    [(channel, ts)] = [key for key, message in slack_server.messages.items() if not message.get("thread_ts")]
    assert store.thread_ref("slack", "thread-1") == {"channel": channel, "ts": ts}  # replies thread on it
    # The chart step still happened, once, in the message's thread.
    [chart] = slack_server.files.values()
    assert (chart.channel, chart.thread_ts) == (channel, ts)
    assert [c.method for c in slack_server.calls].count("conversations.history") == 1


def test_a_post_that_never_reached_slack_is_posted_once(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    store.commit(notifications=[notification("n1")])
    crash_mid_send(store, slack_server, clock, "n1", reached=False)
    report = outbox(store, slack_server, clock).drain()
    assert (report.sent, report.reconciled, len(posts(slack_server))) == (1, 0, 1)
    # A channel named by name is found with conversations.list (nothing is remembered after a restart).
    assert "conversations.list" in [c.method for c in slack_server.calls]


def test_a_resolved_reply_slack_got_is_not_replied_twice(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    store.commit(notifications=[notification("n1")])
    outbox(store, slack_server, clock).drain()
    clock.now += 60 * SEC
    store.commit(notifications=[notification("n2", Event.RESOLVED)])
    crash_mid_send(store, slack_server, clock, "n2", reached=True)
    outbox(store, slack_server, clock).drain()
    replies = [body for body in posts(slack_server) if body.get("thread_ts")]
    assert len(replies) == 1
    assert "conversations.replies" in [c.method for c in slack_server.calls]
    assert status(store, "n2") == "delivered"


def test_a_chart_upload_cut_short_after_it_completed_is_not_uploaded_again(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    store.commit(notifications=[notification("n1", series=True)])
    box = outbox(store, slack_server, clock)
    box.drain(max_items=1)  # the post, and its chart step enqueued
    chart_step = "n1.charts"
    assert store.outbox_item(chart_step) is not None
    crash_mid_send(store, slack_server, clock, chart_step, reached=True)
    outbox(store, slack_server, clock).drain()
    assert len(slack_server.files) == 1
    assert status(store, chart_step) == "delivered"


def test_the_charts_of_a_grouped_message_have_distinct_names_and_are_found_after_a_crash(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    first = incident(series=True)
    group = {"svc": "b"}
    second = replace(first, fingerprint=fingerprint("api-5xx", group), group=group)
    store.commit(notifications=[Notification("n1", "slack", Event.FIRING, (first, second), T0, "thread-1")])
    outbox(store, slack_server, clock).drain(max_items=1)
    crash_mid_send(store, slack_server, clock, "n1.charts", reached=True)
    outbox(store, slack_server, clock).drain()
    names = [file.filename for file in slack_server.files.values()]
    assert len(names) == len(set(names)) == 2  # one chart per incident, each its own name
    assert all(name.startswith("api-5xx.") and name.endswith(".n1.png") for name in names)
    assert "conversations.replies" in [c.method for c in slack_server.calls]  # looked up, both found
    assert status(store, "n1.charts") == "delivered"


def test_when_slack_cannot_be_asked_nothing_is_posted_until_it_can(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    store.commit(notifications=[notification("n1")])
    crash_mid_send(store, slack_server, clock, "n1", reached=True)
    slack_server.rate_limit(retry_after=7, method="conversations.list")
    report = outbox(store, slack_server, clock).drain()
    assert (report.sent, report.retried, len(posts(slack_server))) == (0, 1, 1)
    item = store.outbox_item("n1")
    assert item is not None
    assert item.next_attempt_at == clock.now + 7 * SEC
    assert "looking up an in-doubt send: slack conversations.list: ratelimited" in item.last_error
    clock.now += 7 * SEC
    outbox(store, slack_server, clock).drain()  # still in doubt: looked up, found, not posted
    assert len(posts(slack_server)) == 1
    assert status(store, "n1") == "delivered"


def test_a_token_without_history_scope_posts_with_a_warning(
    store: StateStore, slack_server: SlackServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store.commit(notifications=[notification("n1")])
    crash_mid_send(store, slack_server, clock, "n1", reached=False)
    slack_server.fail("missing_scope", method="conversations.list")
    report = outbox(store, slack_server, clock).drain()
    assert (report.sent, len(posts(slack_server))) == (1, 1)  # at least once rather than never
    assert "in-doubt sends are posted without a lookup" in caplog.text


def test_a_timeout_leaves_the_post_in_doubt_and_the_retry_looks_first(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    store.commit(notifications=[notification("n1")])
    slow = {"left": 1}

    def hang_once(method: str, phase: str) -> None:
        if method == "chat.postMessage" and phase == "handled" and slow["left"]:
            slow["left"] = 0
            time.sleep(1.5)  # Slack posted it, the answer comes after the client gave up

    slack_server.on_call = hang_once
    settings = SlackReceiver(
        token=SecretStr(slack_server.token), channel="#alerts", base_url=slack_server.base_url, timeout="1s"
    )
    notifier = SlackNotifier(settings, Templates(rules=[RULE]))
    box = Outbox(store, {"slack": notifier}, RetryPolicy(jitter=0), clock=clock)
    assert box.drain().retried == 1
    clock.now += 10 * SEC
    assert box.drain().reconciled == 1
    assert len(posts(slack_server)) == 1


def test_a_found_late_resolved_does_not_become_the_next_episodes_thread(
    store: StateStore, slack_server: SlackServer, clock: Clock
) -> None:
    late = notification("late", Event.RESOLVED)  # episode 1: fired and resolved while watcher was down
    fired = replace(notification("fired"), created_at=T0 + SEC)  # episode 2, same group and thread
    store.commit(notifications=[late, fired])
    outbox(store, slack_server, clock).drain()
    clock.now += 60 * SEC
    store.commit(notifications=[replace(notification("done", Event.RESOLVED), created_at=clock.now)])
    outbox(store, slack_server, clock).drain()
    roots = [post for post in slack_server.posts if not post.get("thread_ts")]
    assert [post["metadata"]["event_payload"]["notification_id"] for post in roots] == ["late", "fired"]
    [reply] = [post for post in slack_server.posts if post.get("thread_ts")]
    assert reply["thread_ts"] == roots[1]["ts"]  # episode 2's RESOLVED replies to episode 2's FIRING
    [update] = slack_server.calls_to("chat.update")
    assert update.body["ts"] == roots[1]["ts"]  # and rewrites it, not the found-late message

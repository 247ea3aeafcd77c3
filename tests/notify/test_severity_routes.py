"""An incident whose severity moves it between routes, delivered end to end: the real engine over a
DuckDB store, the SQLite state file, the outbox, Slack (the fake Slack on 127.0.0.1) for warnings and
a webhook pager for criticals. Each receiver sees a coherent story, as with Alertmanager when a label
change reroutes an alert: the pager's page opens with a FIRING and closes with a ``resolved`` when the
incident de-escalates, which says it is still open; Slack hears it escalated away, then warning again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hook_server import Hook
from pydantic import SecretStr
from slack_server import SlackServer

from tests.test_severity_levels import BY_SEVERITY, MIN, SHARES, T0, rule, traffic
from watcher.config import SlackReceiver, WebhookReceiver
from watcher.engine import Engine
from watcher.incidents.state import StateStore
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.slack import SlackNotifier
from watcher.notify.webhook import WebhookNotifier
from watcher.store.embedded import EmbeddedStore
from watcher.templates import Templates


@pytest.fixture
def delivered(
    store: EmbeddedStore, state: StateStore, slack_server: SlackServer, hook: Hook
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Warnings to Slack, criticals to the pager over SHARES' escalation and de-escalation, each
    minute's notifications delivered at once: the Slack posts and the pager's payloads."""
    traffic(store, SHARES)
    rules = [rule()]
    templates = Templates(rules=rules)
    now = [T0]  # the clock of the outbox and of Slack's ts
    slack_server.clock = lambda: now[0].timestamp()
    token = SecretStr(slack_server.token)
    slack = SlackReceiver(token=token, channel="#alerts", base_url=slack_server.base_url)
    notifiers = {
        "slack": SlackNotifier(slack, templates),
        "pager": WebhookNotifier(WebhookReceiver.model_validate({"url": hook.url}), templates),
    }
    outbox = Outbox(state, notifiers, RetryPolicy(jitter=0), clock=lambda: now[0])
    engine = Engine(rules, {"app": store}, state, BY_SEVERITY)
    for minute in range(1, len(SHARES) + 5):
        now[0] = T0 + minute * MIN
        engine.tick(now[0])
        outbox.drain()
    posts = [call.body for call in slack_server.calls_to("chat.postMessage")]
    return posts, [json.loads(body) for _, _, body in hook.requests]


def test_the_pager_page_opens_on_the_escalation_and_closes_on_the_de_escalation(
    delivered: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    _, pages = delivered

    assert [(page["event"], page["incidents"][0]["severity"]) for page in pages] == [
        ("firing", "critical"),
        ("resolved", "warning"),
    ]
    opened, closed = pages
    assert closed["thread_key"] == opened["thread_key"]  # the page it opened
    assert closed["incidents"][0]["left_route"] is True
    assert closed["incidents"][0]["state"] == "firing"  # not over: only off the pager's route


def test_slack_hears_the_incident_left_for_the_pager_then_a_new_firing_when_it_comes_back(
    delivered: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    posts, _ = delivered

    texts = [post["text"] for post in posts]
    assert len(texts) == 4, texts
    fired, escalated, back, resolved = texts
    assert "WARNING" in fired
    # A reply in the warning's thread, not a RESOLVED: the incident goes on, on the pager's route.
    assert "Escalated to critical, still open" in escalated
    assert "RESOLVED" not in escalated
    assert "thread_ts" in posts[1]
    # Warning again: Slack's first word about it since it left is a FIRING, in a new thread.
    assert "WARNING" in back
    assert "thread_ts" not in posts[2]
    assert "RESOLVED" in resolved
    assert posts[3]["thread_ts"] != posts[1]["thread_ts"]

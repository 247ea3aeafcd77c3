"""An ack said in the incident's Slack thread, and shown in the notifications that follow it.

Real state file, dispatcher, outbox and SlackNotifier (slack-sdk) against the fake Slack on 127.0.0.1;
the webhook payload and email text of a later notification from the real templates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from slack_server import SlackServer

from watcher.config import Route, SlackReceiver
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.slack import SlackNotifier
from watcher.notify.webhook import payload
from watcher.routing.acknowledge import acknowledge
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.templates import Templates

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
RULE = Rule.model_validate(
    {"name": "api-5xx", "source": "app", "signal": {"count": {}}, "threshold": {"above": 1}}
)
ROUTE = Route.model_validate(
    {"receiver": "slack", "group_by": ["rule"], "group_wait": "0s", "group_interval": "1m",
     "repeat_interval": "1h"}
)  # fmt: skip


class Change:
    def __init__(self, incident: Incident, event: Event, at: datetime) -> None:
        self.incident, self.event, self.at = incident, event, at


def incident(model: str) -> Incident:
    group = {"model_version": model}
    return Incident(
        fingerprint=fingerprint("api-5xx", group),
        rule="api-5xx",
        group=group,
        labels={"rule": "api-5xx", "model_version": model},
        annotations={"summary": "5xx"},
        severity="critical",
        state=State.FIRING,
        value=0.2,
        threshold=0.05,
        started_at=T0,
        fired_at=T0,
    )


class Daemon:
    """The dispatcher and the outbox as the daemon runs them, on one state file and a clock."""

    def __init__(self, state: StateStore, server: SlackServer) -> None:
        self.state, self.now = state, T0
        self.dispatcher = Dispatcher(state, ROUTE)
        settings = SlackReceiver(token=SecretStr(server.token), channel="#ml", base_url=server.base_url)
        notifiers = {"slack": SlackNotifier(settings, Templates(rules=[RULE]))}
        self.outbox = Outbox(state, notifiers, RetryPolicy(jitter=0), clock=lambda: self.now)

    def step(self, at: datetime, *changes: Change) -> list[Notification]:
        self.now = at
        self.state.commit([change.incident for change in changes])
        plan = self.dispatcher.plan(changes, at)
        self.state.commit(notifications=plan.notifications, writes=[plan.write])
        self.outbox.drain()
        return plan.notifications


@pytest.fixture
def daemon(tmp_path: Path, slack_server: SlackServer) -> Iterator[Daemon]:
    slack_server.clock = lambda: T0.timestamp()
    with StateStore(tmp_path / "state.sqlite") as state:
        yield Daemon(state, slack_server)


def posts(server: SlackServer) -> list[dict[str, object]]:
    return [call.body for call in server.calls_to("chat.postMessage")]


def test_an_ack_is_said_in_the_thread_and_shown_in_the_next_update(
    daemon: Daemon, slack_server: SlackServer
) -> None:
    v3 = incident("v3")
    daemon.step(T0, Change(v3, Event.FIRING, T0))
    [(_, root_ts)] = list(slack_server.messages)
    acknowledge(daemon.state, v3, "ann", "rolling back v3", T0 + 10 * SEC, receivers=["slack"])
    daemon.now = T0 + 10 * SEC
    daemon.outbox.drain()
    [_, said] = posts(slack_server)
    assert said["thread_ts"] == root_ts  # a reply in the incident's thread
    assert str(said["text"]).startswith(":eyes: *Acknowledged by ann: rolling back v3*")
    assert "Acknowledged by *ann*" in str(said["attachments"])

    # A new incident joins the group: the update lists both, v3 with its ack, v4 without.
    v4 = incident("v4")
    [update] = daemon.step(T0 + 60 * SEC, Change(v4, Event.FIRING, T0 + 60 * SEC))
    told = str(posts(slack_server)[-1]["attachments"])
    assert told.count("Acknowledged by *ann*") == 1
    assert "_rolling back v3_" in told
    document = payload(update, Templates(rules=[RULE]))
    acks = {item["group"]["model_version"]: item["ack"] for item in document["incidents"]}
    assert acks["v4"] is None
    assert (acks["v3"]["by"], acks["v3"]["message"], acks["v3"]["until"]) == ("ann", "rolling back v3", None)
    text = Templates(rules=[RULE]).render(update, "email")
    assert "Acknowledged by ann at 2026-01-05 09:00:10" in str(text)

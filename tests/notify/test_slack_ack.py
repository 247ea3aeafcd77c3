"""An ack said in the incident's Slack thread, and shown in the notifications that follow it.

Real state file, dispatcher, outbox and SlackNotifier (slack-sdk) against the fake Slack on 127.0.0.1;
the webhook payload and email text of a later notification from the real templates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_server import SlackServer
from socket_mode_server import SocketModeServer

from watcher.config import Config, Route, SlackReceiver
from watcher.incidents import acks
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.slack import SlackNotifier
from watcher.notify.webhook import payload
from watcher.process.slack_actions import SlackActions
from watcher.routing.acknowledge import acknowledge, unacknowledge
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
        settings = SlackReceiver.model_validate(slack_settings(server))
        notifiers = {"slack": SlackNotifier(settings, Templates(rules=[RULE]))}
        self.outbox = Outbox(state, notifiers, RetryPolicy(jitter=0), clock=lambda: self.now)

    def step(self, at: datetime, *changes: Change) -> list[Notification]:
        self.now = at
        self.state.commit([change.incident for change in changes])
        plan = self.dispatcher.plan(changes, at)
        self.state.commit(notifications=plan.notifications, writes=[plan.write])
        self.outbox.drain()
        return plan.notifications


def slack_settings(server: SlackServer) -> dict[str, str]:
    """The Slack receiver, with an app-level token: its firing messages have an Acknowledge button."""
    return {
        "token": server.token,
        "channel": "#ml",
        "base_url": server.base_url,
        "app_token": server.app_token,
    }


@pytest.fixture
def daemon(tmp_path: Path, slack_server: SlackServer) -> Iterator[Daemon]:
    slack_server.clock = lambda: T0.timestamp()
    with StateStore(tmp_path / "state.sqlite") as state:
        yield Daemon(state, slack_server)


def posts(server: SlackServer) -> list[dict[str, object]]:
    return [call.body for call in server.calls_to("chat.postMessage")]


def acked_by_ann(daemon: Daemon, slack_server: SlackServer) -> tuple[Incident, str]:
    """v3 fires at T0 and ann acknowledges it 10 s later, said in its thread: (v3, the thread's ts)."""
    v3 = incident("v3")
    daemon.step(T0, Change(v3, Event.FIRING, T0))
    [(_, root_ts)] = list(slack_server.messages)
    acknowledge(daemon.state, v3, "ann", "rolling back v3", T0 + 10 * SEC, receivers=["slack"])
    daemon.now = T0 + 10 * SEC
    daemon.outbox.drain()
    return v3, root_ts


def test_an_ack_is_said_in_the_thread_and_shown_in_the_next_update(
    daemon: Daemon, slack_server: SlackServer
) -> None:
    _, root_ts = acked_by_ann(daemon, slack_server)
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


@pytest.fixture
def socket_mode(slack_server: SlackServer) -> Iterator[SocketModeServer]:
    with SocketModeServer() as server:
        slack_server.socket_url = server.url
        yield server


def click(socket_mode: SocketModeServer, fingerprint: str, username: str, channel: str = "C00000001") -> None:
    """A user clicks the Acknowledge button: Slack sends the block action down the socket."""
    payload = {
        "type": "block_actions",
        "user": {"id": f"U{username.upper()}", "username": username, "name": username},
        "channel": {"id": channel},
        "actions": [{"action_id": "watcher_ack.0", "value": fingerprint, "type": "button"}],
    }
    envelope = socket_mode.send_envelope("interactive", payload)
    assert socket_mode.acked(envelope)  # answered at once, as Slack requires within 3 s


def slack_actions(tmp_path: Path, daemon: Daemon, slack_server: SlackServer) -> SlackActions:
    """The daemon's Socket Mode connections of a config with the Slack receiver, not started."""
    config = Config.model_validate(
        {
            "sources": {"local": {"store": "embedded"}},
            "state": {"path": str(tmp_path / "state.sqlite")},
            "receivers": {"slack": {"slack": slack_settings(slack_server)}},
            "route": {"receiver": "slack"},
        }
    )
    return SlackActions(config, daemon.state, lambda: daemon.now, retry=timedelta(milliseconds=100))


def wait_for(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_acknowledge_button_acks_through_socket_mode_and_a_state_change_undoes_it(
    tmp_path: Path, daemon: Daemon, slack_server: SlackServer, socket_mode: SocketModeServer
) -> None:
    v3 = incident("v3")
    daemon.step(T0, Change(v3, Event.FIRING, T0))
    [firing] = posts(slack_server)
    [(_, root_ts)] = list(slack_server.messages)
    [button] = firing["attachments"][0]["blocks"][-1]["elements"]  # type: ignore[index]
    assert (button["text"]["text"], button["value"]) == ("Acknowledge", v3.fingerprint)

    slack_server.fail("internal_error", method="apps.connections.open")  # Slack is down at the start
    actions = slack_actions(tmp_path, daemon, slack_server)
    actions.start()
    try:
        socket_mode.wait_connected()
        assert len(slack_server.calls_to("apps.connections.open")) == 2  # refused once, then tried again
        daemon.now = T0 + 30 * SEC
        click(socket_mode, v3.fingerprint, "ann")
        deadline = time.monotonic() + 10
        while daemon.outbox.drain().sent == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        actions.stop()
    [_, said] = posts(slack_server)
    assert said["thread_ts"] == root_ts
    assert str(said["text"]) == ":eyes: *Acknowledged by @ann*"

    # Acknowledged: the repeat interval passes without a repeat.
    assert daemon.step(T0 + 3600 * SEC) == []
    assert daemon.step(T0 + 7200 * SEC) == []
    # It escalates: the ack is undone, the change is told, and the repeats come back.
    worse = incident("v3").evolve(severity="error", severity_from="critical")
    [told] = daemon.step(T0 + 7260 * SEC, Change(worse, Event.UPDATE, T0 + 7260 * SEC))
    assert told.incidents[0].ack is None
    assert len(daemon.step(T0 + 7260 * SEC + 3600 * SEC)) == 1


def test_a_second_click_on_an_acknowledged_incident_records_nothing_and_tells_the_clicker_by_whom(
    tmp_path: Path, daemon: Daemon, slack_server: SlackServer, socket_mode: SocketModeServer
) -> None:
    v3 = incident("v3")
    daemon.step(T0, Change(v3, Event.FIRING, T0))
    [(channel, _)] = list(slack_server.messages)
    actions = slack_actions(tmp_path, daemon, slack_server)
    actions.start()
    try:
        socket_mode.wait_connected()
        daemon.now = T0 + 30 * SEC
        click(socket_mode, v3.fingerprint, "ann", channel)
        wait_for(lambda: daemon.outbox.drain().sent)
        daemon.now = T0 + 40 * SEC
        click(socket_mode, v3.fingerprint, "ann", channel)  # a double click
        click(socket_mode, v3.fingerprint, "bob", channel)  # a colleague, a moment later
        wait_for(lambda: len(slack_server.calls_to("chat.postEphemeral")) == 2)
    finally:
        actions.stop()
    assert daemon.outbox.drain().sent == 0
    assert [str(said["text"]) for said in posts(slack_server)[1:]] == [":eyes: *Acknowledged by @ann*"]
    told = [(call.body["channel"], call.body["user"], call.body["text"])
            for call in slack_server.calls_to("chat.postEphemeral")]  # fmt: skip
    by_ann = ":eyes: Already acknowledged by @ann at 09:00 UTC: nothing changed"
    assert told == [(channel, "UANN", by_ann), (channel, "UBOB", by_ann)]
    with daemon.state.reading() as db:
        ack = acks.load(db)[v3.fingerprint]
    assert (ack.by, ack.at) == ("@ann", T0 + 30 * SEC)


def test_an_ack_taken_back_is_said_in_the_incidents_thread(daemon: Daemon, slack_server: SlackServer) -> None:
    v3, root_ts = acked_by_ann(daemon, slack_server)

    undone = unacknowledge(daemon.state, v3, "bob", T0 + 20 * SEC, receivers=["slack"])
    daemon.now = T0 + 20 * SEC
    daemon.outbox.drain()

    assert undone is not None
    assert undone[0].by == "ann"
    [_, _, said] = posts(slack_server)
    assert said["thread_ts"] == root_ts
    assert str(said["text"]) == (
        ":leftwards_arrow_with_hook: *Acknowledgement by ann taken back by bob*: repeat notifications "
        "start again"
    )
    assert "Acknowledged by" not in str(said["attachments"])
    assert unacknowledge(daemon.state, v3, "bob", T0 + 30 * SEC, receivers=["slack"]) is None

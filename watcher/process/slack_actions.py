"""The Slack "Acknowledge" button, received through Socket Mode: no public URL needed.

A Slack receiver with an ``app_token`` (xapp-…) gets a button on its FIRING messages
(``watcher.notify.slack_layout.with_ack_buttons``). The daemon holds one Socket Mode connection per such
receiver (slack-sdk's ``SocketModeClient``: it asks ``apps.connections.open`` for a websocket URL
and keeps it open, reconnecting on its own). A click arrives as an ``interactive`` envelope: it is
acknowledged to Slack at once (Slack shows an error to the user after 3 s otherwise), then the
incident named by the button is acknowledged in the state by the Slack user who clicked
(``watcher.routing.acknowledge``), which enqueues the "Acknowledged by @x" reply in the incident's
thread for the outbox. A click on an incident that is no longer open, or already acknowledged,
changes nothing: the clicker alone is told why (an ephemeral message from the bot).

Replicas (``ha:``) each hold a connection; Slack gives each envelope to one of them, and the state
they share makes any of them the right one to record it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

from watcher.config import Config
from watcher.incidents.state import StateStore
from watcher.notify.slack import DEFAULT_BASE_URL
from watcher.notify.slack_layout import ACK_ACTION
from watcher.routing.acknowledge import AcknowledgeError, AlreadyAcknowledgedError, acknowledge

log = logging.getLogger("watcher.process.slack_actions")
_LONGEST_WAIT = timedelta(minutes=1)


class SlackActions:
    """The Socket Mode connections of the Slack receivers with an ``app_token``."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        clock: Callable[[], datetime],
        retry: timedelta = timedelta(seconds=5),
    ) -> None:
        self.state, self.clock, self.retry = state, clock, retry
        self.clients: dict[str, SocketModeClient] = {}
        self._bots: dict[str, WebClient] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        for name, receiver in sorted(config.receivers.items()):
            settings = receiver.slack
            if settings is None or settings.app_token is None:
                continue
            base_url = settings.base_url or DEFAULT_BASE_URL
            web = WebClient(base_url=base_url, retry_handlers=[])
            client = SocketModeClient(settings.app_token.get_secret_value(), web_client=web, logger=log)
            client.socket_mode_request_listeners.append(self._listener(name))
            self.clients[name] = client
            if settings.token is not None:  # the bot's: it answers the clicker
                self._bots[name] = WebClient(settings.token.get_secret_value(), base_url=base_url, timeout=10)

    def start(self) -> None:
        """Open every connection, each from its own thread: a Slack unreachable at start (slack-sdk
        reconnects a connection it once had, not one it never got) is tried again, waiting
        ``retry`` then twice as long each time, up to a minute."""
        for name, client in self.clients.items():
            thread = threading.Thread(target=self._connect, args=(name, client), name=f"slack-socket-{name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _connect(self, name: str, client: SocketModeClient) -> None:
        wait = self.retry
        while not self._stopping.is_set():
            try:
                client.connect()
                return
            except Exception as exc:  # slack-sdk raises its own, HTTP and socket errors alike
                log.warning(
                    "Slack Socket Mode for receiver %s not connected (%s): trying again in %.0fs",
                    name, type(exc).__name__, wait.total_seconds(),
                )  # fmt: skip
            self._stopping.wait(wait.total_seconds())
            wait = min(wait * 2, _LONGEST_WAIT)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for client in self.clients.values():
            client.close()

    def _listener(self, receiver: str) -> Callable[[BaseSocketModeClient, SocketModeRequest], None]:
        def listener(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            if request.type == "interactive" and request.payload.get("type") == "block_actions":
                self.clicked(receiver, request.payload)

        return listener

    def clicked(self, receiver: str, payload: dict[str, Any]) -> None:
        """Acknowledge the incidents whose buttons ``payload`` says were clicked, by the clicker.
        A click on an incident already acknowledged (a second click, or a colleague's) records
        nothing: the clicker alone is told by whom it is (``chat.postEphemeral``), as they are
        when the incident is no longer open."""
        user = payload.get("user") or {}
        by = "@" + str(user.get("username") or user.get("name") or user.get("id") or "someone")
        for action in payload.get("actions") or []:
            if not str(action.get("action_id", "")).startswith(ACK_ACTION):
                continue
            incident = self.state.incident(str(action.get("value", "")))
            if incident is None:
                log.info("Acknowledge clicked for an unknown incident")
                continue
            try:
                acknowledge(self.state, incident, by, "", self.clock(), receivers=[receiver], once=True)
            except AcknowledgeError as exc:
                log.info("Acknowledge clicked: %s", exc)
                self._tell_clicker(receiver, payload, _refusal(exc))
                continue
            log.info("incident %s acknowledged in Slack by %s", incident.fingerprint, by)

    def _tell_clicker(self, receiver: str, payload: dict[str, Any], text: str) -> None:
        """A message in the channel only the user who clicked sees; best effort (the click
        itself was answered)."""
        bot, user = self._bots.get(receiver), (payload.get("user") or {}).get("id")
        # Slack names the channel in ``channel`` and again in ``container`` (the clicked message's).
        channel = (payload.get("channel") or {}).get("id")
        channel = channel or (payload.get("container") or {}).get("channel_id")
        if bot is None or not user or not channel:
            return
        try:
            bot.chat_postEphemeral(channel=str(channel), user=str(user), text=text)
        except Exception as exc:  # slack-sdk raises its own, HTTP and socket errors alike
            log.warning("Slack reply to the Acknowledge click not sent (%s)", type(exc).__name__)


def _refusal(refused: AcknowledgeError) -> str:
    """What the clicker is told: by whom the incident is acknowledged, or why it cannot be."""
    if isinstance(refused, AlreadyAcknowledgedError):
        ack = refused.ack
        return f":eyes: Already acknowledged by {ack.by} at {ack.at:%H:%M} UTC: nothing changed"
    return f"Not acknowledged: {refused}"

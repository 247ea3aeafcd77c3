"""The Slack "Acknowledge" button, received through Socket Mode: no public URL needed.

A Slack receiver with an ``app_token`` (xapp-…) gets a button on its FIRING messages
(``watcher.notify.slack_layout.with_ack_buttons``). The daemon holds one Socket Mode connection per such
receiver (slack-sdk's ``SocketModeClient``: it asks ``apps.connections.open`` for a websocket URL
and keeps it open, reconnecting on its own). A click arrives as an ``interactive`` envelope: it is
acknowledged to Slack at once (Slack shows an error to the user after 3 s otherwise), then the
incident named by the button is acknowledged in the state by the Slack user who clicked
(``watcher.routing.acknowledge``), which enqueues the "Acknowledged by @x" reply in the incident's
thread for the outbox. A click on an incident that is no longer open changes nothing.

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
from watcher.routing.acknowledge import AcknowledgeError, acknowledge

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
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        for name, receiver in sorted(config.receivers.items()):
            settings = receiver.slack
            if settings is None or settings.app_token is None:
                continue
            web = WebClient(base_url=settings.base_url or DEFAULT_BASE_URL, retry_handlers=[])
            client = SocketModeClient(settings.app_token.get_secret_value(), web_client=web, logger=log)
            client.socket_mode_request_listeners.append(self._listener(name))
            self.clients[name] = client

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
        """Acknowledge the incidents whose buttons ``payload`` says were clicked, by the clicker."""
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
                acknowledge(self.state, incident, by, "", self.clock(), receivers=[receiver])
            except AcknowledgeError as exc:
                log.info("Acknowledge clicked: %s", exc)
                continue
            log.info("incident %s acknowledged in Slack by %s", incident.fingerprint, by)

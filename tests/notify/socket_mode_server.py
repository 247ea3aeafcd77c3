"""A Socket-Mode-like websocket server on 127.0.0.1 (the ``websockets`` package's threaded server).

Slack's Socket Mode: the app asks ``apps.connections.open`` (``slack_server.SlackServer`` answers with
``url``), connects, gets ``{"type": "hello"}``, then envelopes ``{"envelope_id", "type", "payload",
"accepts_response_payload"}``, each of which it must answer with ``{"envelope_id": ...}`` within 3 s.
``send_envelope`` delivers one and ``acked`` waits for the app's answer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class SocketModeServer:
    """Use as a context manager; ``url`` is the ws:// URL apps.connections.open should answer."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.answers: list[dict[str, Any]] = []  # what the app sent back, in order
        self._lock = threading.Lock()
        self._server: Server = serve(self._serve, "127.0.0.1", 0)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-socket-mode", daemon=True
        )

    def __enter__(self) -> SocketModeServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=test"

    def _serve(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections.append(connection)
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        try:
            for message in connection:
                with self._lock:
                    self.answers.append(json.loads(message))
        except ConnectionClosed:
            pass

    def wait_connected(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.connections:
            if time.monotonic() > deadline:
                raise TimeoutError("the app never connected")
            time.sleep(0.02)

    def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver one envelope to the (latest) connected app; its id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": False,
        }
        self.connections[-1].send(json.dumps(envelope))
        return envelope_id

    def acked(self, envelope_id: str, timeout: float = 10) -> bool:
        """Whether the app answered ``envelope_id`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(answer.get("envelope_id") == envelope_id for answer in self.answers):
                    return True
            time.sleep(0.02)
        return False

"""A webhook receiver on 127.0.0.1 for e2e tests: records every delivery (watcher's webhook sends the
notification id in ``X-Watcher-Delivery``, the same on every retry) and can answer scripted
failures, e.g. 429 with ``Retry-After``, for a while.

``WebhookServer`` runs in the test process. ``RecordingProcess`` runs the same server in a process
of its own that appends each delivery to a file before answering: the crash test uses it, because
a receiver sharing the test's busy interpreter answers late, and the time between a delivery and
its answer is exactly when a SIGKILL makes the daemon send it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Delivery:
    id: str
    event: str
    incidents: list[dict[str, Any]]
    received: float  # time.time()


class WebhookServer:
    """Use as a context manager; ``url`` is the endpoint to configure."""

    def __init__(self, record: Path | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self._record = None if record is None else record.open("a")
        self.refused = 0
        self._failing_until = 0.0
        self._retry_after = 1.0
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/hooks/watcher"

    def rate_limit(self, seconds: float, retry_after: float = 1.0) -> None:
        """Answer 429 with ``Retry-After`` for the next ``seconds``."""
        with self._lock:
            self._failing_until = time.monotonic() + seconds
            self._retry_after = retry_after

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            if time.monotonic() < self._failing_until:
                self.refused += 1
                return 429, {"Retry-After": f"{self._retry_after:g}"}
            data = json.loads(body)
            delivery = Delivery(
                headers.get("X-Watcher-Delivery", ""), data["event"], data["incidents"], time.time()
            )
            self.deliveries.append(delivery)
            if self._record is not None:  # before answering: a delivery is recorded once received
                self._record.write(json.dumps(delivery.__dict__) + "\n")
                self._record.flush()
            return 200, {}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A killed daemon resets its connection: expected here, not worth a traceback."""


def _handler(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: no connection set-up between a send and its record

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers = server.handle({k.title(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": "0"}.items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: deliveries are recorded instead."""

    return Handler


class RecordingProcess:
    """``WebhookServer`` in a child process, recording to ``record``; a context manager."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(record)], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self._process.kill()
            raise RuntimeError(f"webhook recorder did not start: {self.url!r}")

    def __enter__(self) -> RecordingProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._process.kill()
        self._process.wait(10)

    def snapshot(self) -> list[Delivery]:
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [Delivery(**json.loads(line)) for line in lines if line.endswith("}")]


if __name__ == "__main__":
    with WebhookServer(Path(sys.argv[1])) as server:
        print(server.url, flush=True)
        threading.Event().wait()

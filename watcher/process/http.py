"""The HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz`` (ready).

It runs on its own thread so a slow scrape never delays a tick, and binds 127.0.0.1 unless the
config says otherwise (inside a container the config sets ``0.0.0.0`` so probes can reach it).
Port 0 picks a free port; ``HttpServer.address`` tells which.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from watcher.config import listen_address
from watcher.process.health import Health, Verdict
from watcher.process.metrics import Metrics

log = logging.getLogger("watcher.process.http")

_INDEX = b"watcher\n\n/metrics  Prometheus metrics\n/healthz  liveness\n/readyz   readiness\n"


class HttpError(Exception):
    """The listen address is invalid or cannot be bound."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::1]:9464"`` / ``"0.0.0.0:9464"`` -> (host, port)."""
    try:
        return listen_address(listen)
    except ValueError as exc:
        raise HttpError(str(exc)) from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Lets a restart rebind a port still in TIME_WAIT; Linux still refuses a port that another
    # process is listening on, so two watchers cannot share one.
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: Health) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        self.health = health
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr, bypassing structured logging.
        log.exception("http request from %s failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        # One handler serves every request of a keep-alive connection, so per-request state is
        # passed along rather than stored on self.
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, content_type = self.server.metrics.exposition(self.headers.get("Accept"))
            self._reply(HTTPStatus.OK, body, content_type, head)
        elif path == "/healthz":
            self._verdict(self.server.health.liveness(), head)
        elif path == "/readyz":
            self._verdict(self.server.health.readiness(), head)
        elif path == "/":
            self._reply(HTTPStatus.OK, _INDEX, "text/plain; charset=utf-8", head)
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head)

    def _verdict(self, verdict: Verdict, head: bool) -> None:
        status = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
        body = json.dumps(verdict.as_json(), sort_keys=True).encode() + b"\n"
        self._reply(status, body, "application/json", head)

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes hit these endpoints every few seconds: request lines only at debug level.
        log.debug("http %s " + format, self.client_address[0], *args)


class HttpServer:
    """A running HTTP endpoint. ``close()`` stops it and waits for its thread."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        # serve_forever polls for shutdown; 0.1s keeps close() (and a SIGTERM) quick at negligible cost.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="watcher-http", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when the config asked for port 0."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_http_server(listen: str, metrics: Metrics, health: Health) -> HttpServer:
    """Bind ``listen`` (``host:port``) and serve on a background thread.

    Raises ``HttpError`` when the address is malformed or cannot be bound (e.g. in use).
    """
    host, port = parse_listen(listen)
    try:
        server = _Server((host, port), metrics, health)
    except OSError as exc:
        raise HttpError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    http = HttpServer(server)
    log.info("http listening on %s", http.url, extra={"listen": http.url})
    return http

"""A store that can go down: osmem-server (OpenSearch-compatible) behind a TCP proxy on 127.0.0.1.

``TcpProxy.outage()`` closes the listening socket and every open connection, so watcher's search
client gets "connection refused" while the server behind keeps its data and keeps indexing what
the test sends it directly (like log shippers writing to a cluster a watcher cannot reach).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import urllib.request
from typing import Any


class SearchServer:
    """osmem-server on 127.0.0.1:0, stopped by its PID."""

    def __init__(self) -> None:
        from osmem_server import resolve_binary

        self.process = subprocess.Popen(
            [resolve_binary(), "--addr", "127.0.0.1:0", "--no-ja", "--parent-pid", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["url"]
        threading.Thread(target=lambda: [None for _ in self.process.stdout or []], daemon=True).start()

    def request(self, method: str, path: str, body: Any = None, ndjson: list[Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        kind = "application/json"
        if ndjson is not None:
            data, kind = "".join(json.dumps(line) + "\n" for line in ndjson).encode(), "application/x-ndjson"
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": kind}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"{}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        if self.process.stdin is not None:
            self.process.stdin.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` (host, port) until ``outage()``; ``restore()``
    listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: outage
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def outage(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): stop listening now
        self._listener.close()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._open.clear()

    def restore(self) -> None:
        self._listener = self._listen(self.port)

    def close(self) -> None:
        self.outage()

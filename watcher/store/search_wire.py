"""The tick's one request, ``_msearch``, on a kept-alive connection of the standard library.

A search store's tick is one ``_msearch``. Through opensearch-py or elasticsearch-py it passes
the client's parameter handling, its transport, urllib3's pool, retry and URL parsing, and
urllib3's response wrapper: 0.69 ms of CPU per request, against 0.37 ms for the same request on
``http.client`` (``bench/bench_search_tick.py`` measures the whole tick: a tenth of its CPU).
``KeptAlive`` sends only that request itself and leaves every other call (field capabilities,
bulk, index creation) to the client. It speaks the clients' settings as they do: the same hosts
(a path prefix, credentials in the URL), the same credentials header, the same TLS
verification (the CA bundle given, else certifi's, as the clients use), client certificates,
the request timeout; and it fails in the same three kinds, told in the same words
(``watcher.store.search_client``, ``failure_reason``).

Hosts are tried in order: a host that cannot be reached is left for the next one until that one
fails too (the clients mark it dead for a while; the effect on a tick, one retry on the next
host, is the same). A connection the server closed while it was idle is opened again once,
without a retry counted: ``_msearch`` only reads.
"""

from __future__ import annotations

import base64
import functools
import http.client
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from watcher import __version__
from watcher.config import SearchSource
from watcher.store.answers import error_message
from watcher.store.dsl import Json
from watcher.store.search_client import (
    Backend,
    RejectedError,
    RequestTimeoutError,
    UnreachableError,
    auth_options,
    failure_reason,
    read_json,
)

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""What reusing a connection the server closed while idle raises: opened again, once."""


@dataclass(frozen=True)
class Host:
    """One entry of ``hosts``: where to connect, the path prefix, credentials given in the URL."""

    https: bool
    name: str
    port: int
    prefix: str
    userinfo: tuple[str, str] | None

    @classmethod
    def parse(cls, url: str) -> Host:
        """``https://user:secret@host:9243/prefix``; ``host:9200`` (no scheme) is plain HTTP, as
        the clients read it; without a port, 443 for HTTPS and 9200 for HTTP, as opensearch-py
        (elasticsearch-py asks for the port)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        userinfo = None
        if parts.username is not None or parts.password is not None:
            userinfo = (unquote(parts.username or ""), unquote(parts.password or ""))
        return cls(
            parts.scheme == "https",
            parts.hostname or "localhost",
            parts.port or (443 if parts.scheme == "https" else 9200),
            parts.path.rstrip("/"),
            userinfo,
        )


class KeptAlive:
    """``backend`` with its ``_msearch`` sent on ``http.client`` connections kept alive."""

    def __init__(self, backend: Backend, source: SearchSource) -> None:
        self.backend = backend
        self.describe = backend.describe
        self._hosts = [Host.parse(url) for url in source.hosts]
        self._timeout = source.timeout.total_seconds()
        self._tls = _tls_context(source) if any(host.https for host in self._hosts) else None
        common = _headers(source)
        self._headers = {  # credentials in a host's URL, unless the source gives its own
            host: common if host.userinfo is None or "authorization" in common else {
                **common, "authorization": _basic(*host.userinfo)}
            for host in self._hosts
        }  # fmt: skip
        self._current = 0
        self._idle: list[tuple[Host, http.client.HTTPConnection]] = []  # one per thread at most in use

    def msearch(self, index: str, lines: bytes, filter_path: str) -> Json:
        host = self._hosts[self._current]
        path = _msearch_path(host.prefix, index, filter_path)
        try:
            return self._send(host, path, lines)
        except UnreachableError:
            if self._hosts[self._current] is host:
                self._current = (self._current + 1) % len(self._hosts)
            raise

    def _send(self, host: Host, path: str, body: bytes) -> Json:
        connection, reused = self._connection(host)
        headers = self._headers[host]
        try:
            try:
                status, data = _exchange(connection, path, body, headers)
            except _STALE:
                if not reused:
                    raise
                connection.close()
                status, data = _exchange(connection, path, body, headers)
        except TimeoutError as exc:
            connection.close()  # the answer may still come: it must not be read as the next one's
            raise RequestTimeoutError(failure_reason(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, TLS verification
            connection.close()
            raise UnreachableError(failure_reason(exc) or type(exc).__name__) from exc
        self._idle.append((host, connection))
        return _answer(status, data)

    def _connection(self, host: Host) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to ``host`` (reused: True) or a new one."""
        while self._idle:
            try:
                idle_host, connection = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if idle_host is host:
                return connection, connection.sock is not None
            connection.close()
        if host.https:
            timeout, tls = self._timeout, self._tls
            return http.client.HTTPSConnection(host.name, host.port, timeout=timeout, context=tls), False
        return http.client.HTTPConnection(host.name, host.port, timeout=self._timeout), False

    def field_caps(self, index: str, fields: list[str]) -> Json:
        return self.backend.field_caps(index, fields)

    def bulk(self, index: str, operations: list[Json]) -> Json:
        return self.backend.bulk(index, operations)

    def ensure_index(self, index: str, mappings: Json) -> Json:
        return self.backend.ensure_index(index, mappings)

    def refresh(self, index: str) -> Json:
        return self.backend.refresh(index)

    def info(self) -> Json:
        return self.backend.info()

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()
        self.backend.close()


@functools.lru_cache(maxsize=64)
def _msearch_path(prefix: str, index: str, filter_path: str) -> str:
    """The request's path, quoted once: the same at every tick."""
    return f"{prefix}/{quote(index, safe=',*')}/_msearch?filter_path={quote(filter_path, safe=',.*')}"


def _exchange(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def _answer(status: int, data: bytes) -> Json:
    try:
        answer: Any = read_json(data)
    except ValueError:
        answer = None
    if 200 <= status < 300:
        if not isinstance(answer, dict):
            raise RejectedError(0, f"unreadable answer: {data[:200]!r}")
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    text = data[:200].decode("utf-8", "replace").strip()
    raise RejectedError(status, error_message(error) if error is not None else text or f"HTTP {status}")


def _headers(source: SearchSource) -> dict[str, str]:
    headers = {
        "content-type": "application/x-ndjson",
        "accept": "application/json",
        "user-agent": f"watcher/{__version__}",
    }
    auth = auth_options(source)
    if "http_auth" in auth:
        headers["authorization"] = _basic(*auth["http_auth"])
    headers.update(auth.get("headers", {}))
    return headers


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _tls_context(source: SearchSource) -> ssl.SSLContext:
    """Verified against ``ca_certs`` (certifi's bundle when none is given, as the clients do). A
    file OpenSSL cannot read is refused here, as a missing one is (``tls_options``), with its name
    and OpenSSL's reason, not at every tick as an unreachable store."""
    import certifi

    try:
        context = ssl.create_default_context(cafile=str(source.ca_certs or certifi.where()))
    except ssl.SSLError as exc:
        reason = _openssl_reason(exc)
        raise ValueError(
            f"ca_certs file {source.ca_certs} holds no certificate OpenSSL can read ({reason})"
        ) from exc
    if source.client_cert is not None:
        key = None if source.client_key is None else str(source.client_key)
        try:
            context.load_cert_chain(str(source.client_cert), key)
        except ssl.SSLError as exc:
            files = f"client_cert {source.client_cert}" + (f" with client_key {key}" if key else "")
            raise ValueError(f"{files}: not a certificate and its key ({_openssl_reason(exc)})") from exc
    if not source.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _openssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason without the source line of Python's ``_ssl.c``."""
    return exc.reason or re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc))

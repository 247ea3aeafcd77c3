"""A real OpenSearch-compatible server for the search store tests, and the tools around it.

``search_server`` (session) starts the ``osmem-server`` binary shipped in the ``osmem-server``
wheel on 127.0.0.1 with port 0, reads its URL from the first line it prints, and stops it by PID
at teardown. Set ``WATCHER_TEST_ES_URL`` (e.g. ``http://elastic:secret@127.0.0.1:9200``) to run
the same tests against a real Elasticsearch instead; tests that need a server of their own (to
kill it) still use osmem-server.

Both clients talk to it. elasticsearch-py 9 sends the vendor media type
``application/vnd.elasticsearch+json; compatible-with=9``, which only Elasticsearch accepts:
``PlainJsonNode`` sends plain ``application/json`` instead. That shim lives here only; watcher
itself talks to a real Elasticsearch with the client as it is.

``fault_proxy`` puts a small HTTP(S) server on 127.0.0.1 in front of a real server to answer
429/503, hang past the timeout, record request headers or terminate TLS -- the store behind it
stays real.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from elastic_transport import Urllib3HttpNode

from watcher.config import SearchSource
from watcher.store.search import SearchStore

STARTUP_TIMEOUT = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here and Path(str(item.fspath)).name.startswith("test_search"):
            item.add_marker(pytest.mark.search)


class PlainJsonNode(Urllib3HttpNode):
    """An elasticsearch-py node that sends ``application/json`` / ``application/x-ndjson``."""

    def perform_request(
        self, method: str, target: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> Any:
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and "vnd.elasticsearch+" in value:
                    headers[name] = value.replace("vnd.elasticsearch+", "").split(";")[0]
        return super().perform_request(method, target, body=body, headers=headers, **kw)


# --------------------------------------------------------------------------- the server


@dataclass
class SearchServer:
    """A search server for tests: its URL (without credentials) and, if we started it, its process."""

    url: str
    username: str | None = None
    password: str | None = None
    process: subprocess.Popen[str] | None = None

    @property
    def external(self) -> bool:
        return self.process is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def request(self, method: str, path: str, body: Any = None, ndjson: bool = False) -> Any:
        """One plain HTTP request (test setup only), decoded as JSON."""
        if ndjson:
            data: bytes | None = "".join(json.dumps(line) + "\n" for line in body).encode()
        else:
            data = None if body is None else json.dumps(body).encode()
        kind = "application/x-ndjson" if ndjson else "application/json"
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": kind}
        )
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def create_index(
        self, index: str, properties: Mapping[str, Any] | None, docs: Sequence[Mapping[str, Any]]
    ) -> None:
        """Create ``index`` (explicit mapping, or dynamic when ``properties`` is None) and load ``docs``."""
        body = {"mappings": {"properties": dict(properties)}} if properties is not None else {}
        self.request("PUT", f"/{index}", body)
        for start in range(0, len(docs), 5000):
            lines: list[Any] = []
            for doc in docs[start : start + 5000]:
                lines += [{"index": {}}, doc]
            answer = self.request("POST", f"/{index}/_bulk", lines, ndjson=True)
            assert not answer.get("errors"), answer
        self.request("POST", f"/{index}/_refresh")

    def delete_index(self, index: str) -> None:
        self.request("DELETE", f"/{index}")


def start_osmem() -> SearchServer:
    """Start ``osmem-server`` on 127.0.0.1:0; its first stdout line is JSON with the URL."""
    from osmem_server import resolve_binary

    process = subprocess.Popen(
        [resolve_binary(), "--addr", "127.0.0.1:0", "--no-ja", "--parent-pid", str(os.getpid())],
        stdin=subprocess.PIPE,  # it exits when this pipe closes, so it never outlives the tests
        stdout=subprocess.PIPE,
        text=True,
    )
    first: list[str] = []
    reader = threading.Thread(
        target=lambda: first.append(process.stdout.readline() if process.stdout else "")
    )
    reader.start()
    reader.join(STARTUP_TIMEOUT)
    if not first or not first[0].strip():
        stop(SearchServer("", process=process), signal.SIGKILL)
        raise RuntimeError(f"osmem-server printed no URL within {STARTUP_TIMEOUT}s")
    threading.Thread(target=_drain, args=(process,), daemon=True).start()
    return SearchServer(json.loads(first[0])["url"], process=process)


def _drain(process: subprocess.Popen[str]) -> None:
    if process.stdout is not None:
        for _ in process.stdout:
            pass


def stop(server: SearchServer, sig: int = signal.SIGTERM) -> None:
    """Stop a server we started, by its PID."""
    process = server.process
    if process is None:
        return
    if process.poll() is None:
        os.kill(process.pid, sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdin:
        process.stdin.close()


def _external(url: str) -> SearchServer:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    bare = urlunsplit((parts.scheme, netloc, "", "", "")).rstrip("/")
    return SearchServer(bare, parts.username, parts.password)


@pytest.fixture(scope="session")
def search_server() -> Iterator[SearchServer]:
    """The session's search server: osmem-server, or ``WATCHER_TEST_ES_URL`` when set."""
    external = os.environ.get("WATCHER_TEST_ES_URL")
    if external:
        yield _external(external)
        return
    server = start_osmem()
    yield server
    stop(server)


@pytest.fixture
def private_server() -> Iterator[SearchServer]:
    """An osmem-server of this test's own, which the test may kill."""
    server = start_osmem()
    yield server
    stop(server, signal.SIGKILL)


# --------------------------------------------------------------------------- stores

StoreFactory = Callable[..., SearchStore]


def client_options(server: SearchServer, client: str) -> dict[str, Any]:
    if client == "elasticsearch" and not server.external:
        return {"node_class": PlainJsonNode}
    return {}


def source_for(
    server: SearchServer, client: str, index: str, url: str | None = None, **settings: Any
) -> SearchSource:
    """A source on ``index`` of ``server`` (or of ``url``, e.g. a proxy in front of it)."""
    auth: dict[str, Any] = {}
    if server.username is not None:
        auth = {"username": server.username, "password": server.password}
    fields: dict[str, Any] = {"timeout": "10s", "max_retries": 0, **auth, **settings}
    return SearchSource.model_validate(
        {"store": client, "hosts": [url or server.url], "index": index, **fields}
    )


@pytest.fixture
def options_for(search_server: SearchServer) -> Callable[[str], dict[str, Any]]:
    """``options_for(client)``: the client options a ``SearchStore`` on the session server needs."""
    return lambda client: client_options(search_server, client)


@pytest.fixture(params=["opensearch", "elasticsearch"])
def client(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``client`` runs with opensearch-py and with elasticsearch-py."""
    return str(request.param)


@pytest.fixture
def make_store(search_server: SearchServer) -> Iterator[StoreFactory]:
    """``make_store(client, index, url=None, server=None, page_size=..., sleep=..., **source settings)``."""
    stores: list[SearchStore] = []

    def make(
        client: str,
        index: str,
        *,
        url: str | None = None,
        server: SearchServer | None = None,
        **settings: Any,
    ) -> SearchStore:
        store_args = {
            key: settings.pop(key)
            for key in ("page_size", "max_groups", "sleep", "clock", "mapping_ttl")
            if key in settings
        }
        target = server or search_server
        options = client_options(target, client)
        options.update(settings.pop("client_options", {}))
        source = source_for(target, client, index, url, **settings)
        store = SearchStore(source, client_options=options, **store_args)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture(scope="module")
def one_document_index(request: pytest.FixtureRequest, search_server: SearchServer) -> Iterator[str]:
    """An index of the test module's own holding one document (08:00:10 on 2026-01-05, service
    ``api``), deleted after the module: for tests of the transport, not of the answers."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"watcher-{prefix}-{uuid.uuid4().hex[:8]}"
    mapping = {"@timestamp": {"type": "date"}, "service": {"type": "keyword"}}
    search_server.create_index(name, mapping, [{"@timestamp": "2026-01-05T08:00:10Z", "service": "api"}])
    yield name
    search_server.delete_index(name)


@pytest.fixture
def fresh_index(search_server: SearchServer) -> Iterator[Callable[[str], str]]:
    """``fresh_index(prefix)``: a new index name, deleted after the test if it was created."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        with contextlib.suppress(AssertionError):  # never created
            search_server.delete_index(name)


# --------------------------------------------------------------------------- faults and TLS


@dataclass
class FaultProxy:
    """Forwards every request to ``upstream``, first playing the queued ``faults``:
    ``("status", 503)`` answers that status, ``("hang", 2.0)`` waits that long, then forwards,
    ``("drop", 0)`` closes the connection without an answer (as a server closes an idle
    keep-alive connection just as the client reuses it)."""

    upstream: str
    url: str = ""
    faults: list[tuple[str, float]] = field(default_factory=list)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            proxy.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            if proxy.faults:
                kind, value = proxy.faults.pop(0)
                if kind == "drop":
                    self.close_connection = True
                    return
                if kind == "status":
                    self._answer(
                        int(value),
                        b'{"error":{"type":"injected","reason":"injected fault"},"status":%d}' % int(value),
                    )
                    return
                time.sleep(value)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
            request = urllib.request.Request(
                proxy.upstream + self.path, data=body, method=self.command, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    self._answer(answer.status, answer.read())
            except urllib.error.HTTPError as exc:
                self._answer(exc.code, exc.read())

        def _answer(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """``fault_proxy(upstream_url, tls=None, keep_alive=False)``: a proxy on 127.0.0.1:0 (HTTPS
    with an ``ssl.SSLContext``); HTTP/1.0, one connection per request, unless ``keep_alive``."""
    proxies: list[FaultProxy] = []

    def make(upstream: str, tls: ssl.SSLContext | None = None, keep_alive: bool = False) -> FaultProxy:
        proxy = FaultProxy(upstream)
        handler = _handler(proxy)
        if keep_alive:
            handler.protocol_version = "HTTP/1.1"
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        proxy.server = server
        proxy.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    files = {
        name: folder / name
        for name in (
            "ca.pem",
            "ca.key",
            "server.pem",
            "server.key",
            "client.pem",
            "client.key",
            "other-ca.pem",
            "other-ca.key",
        )
    }
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", *ec, "-keyout", str(files[f"{name}.key"]), "-out", str(files[f"{name}.pem"]),
            "-days", "2", "-subj", f"/CN=watcher test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        csr = folder / f"{name}.csr"
        ext = folder / f"{name}.ext"
        ext.write_text(extension + "\n")
        _openssl("req", *ec, "-keyout", str(files[f"{name}.key"]), "-out", str(csr), "-subj", f"/CN={name}")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(files["ca.pem"]), "-CAkey", str(files["ca.key"]),
            "-CAcreateserial", "-out", str(files[f"{name}.pem"]), "-days", "2", "-extfile", str(ext),
        )  # fmt: skip
    return files


def server_tls(files: Mapping[str, Path], require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["server.pem"], files["server.key"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files["ca.pem"])
    return context


@pytest.fixture
def tls_context(tls_files: dict[str, Path]) -> Callable[..., ssl.SSLContext]:
    """``tls_context(require_client_cert=False)``: a server-side context with the test certificate."""
    return lambda require_client_cert=False: server_tls(tls_files, require_client_cert)

"""A fake Slack on 127.0.0.1 for tests: enough of the Web API and incoming webhooks for watcher.

It speaks HTTP like Slack does (``{"ok": false, "error": ...}`` with HTTP 200 for Web API errors,
429 with ``Retry-After``, plain-text webhook errors with 4xx statuses), so tests drive the real
slack-sdk clients against it. Every request is recorded; failures are scripted ahead of a call:

    with SlackServer() as slack:
        slack.rate_limit(times=1, retry_after=1)          # the next call answers 429
        slack.fail("channel_not_found")                   # then one Web API error
        slack.fail("message_not_found", method="chat.update")
        client = WebClient(token=slack.token, base_url=slack.base_url)
        ...
        assert slack.calls_to("chat.postMessage")[0].body["channel"] == "#alerts"

Implemented: ``chat.postMessage``, ``chat.update`` (both keep the channel's messages, so an update
of an unknown ``ts`` answers ``message_not_found``; ``metadata`` is kept with the message),
``conversations.history`` / ``conversations.replies`` (GET, ``oldest``, ``include_all_metadata``,
cursor paging) and ``conversations.list``, ``auth.test``, the webhook path
``/services/T000/B000/<secret>``, and the three steps of slack-sdk's ``files_upload_v2``:
``files.getUploadURLExternal`` (hands out an upload URL on this server), the upload itself, and
``files.completeUploadExternal`` (shares the files in a channel or thread; ``.files`` keeps them).
A completed upload into a thread is also a reply in that thread with ``files``, as in Slack. Other
methods answer ``unknown_method``. Messages over Slack's Block Kit limits (50 blocks, 3000
characters per section) are refused with ``invalid_blocks``, as Slack does.

``on_call`` (method, phase) is called on the server thread at each request's ``received`` (before
it is handled; returning True drops the request unhandled), ``handled`` (Slack has done it, the
answer is not sent yet) and ``answered`` phases: a crash test kills the daemon from there, at the
exact step of a send it aims at. ``posts`` keeps every message as it was posted.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

WEBHOOK_PATH = "/services/T000/B000/webhook-secret-0123456789"
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
# HTTP statuses Slack uses for incoming-webhook errors.
WEBHOOK_STATUSES = {"invalid_token": 403, "action_prohibited": 403, "no_service": 404,
                    "channel_not_found": 404, "channel_is_archived": 410, "no_text": 400,
                    "invalid_payload": 400}  # fmt: skip


@dataclass(frozen=True)
class SlackCall:
    """One request the server received."""

    method: str  # the Web API method ("chat.postMessage") or "webhook"
    path: str
    body: dict[str, Any]  # the JSON body, or the form fields
    headers: dict[str, str]
    at: float = 0.0  # time.time() when it arrived


@dataclass
class SlackFile:
    """A file uploaded through ``files_upload_v2``; ``channel`` is set once the upload is completed."""

    id: str
    filename: str
    length: int
    data: bytes = b""
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None


@dataclass
class _Scripted:
    status: int
    error: str
    retry_after: float | None
    method: str | None  # only calls to this method, or any call
    times: int


class SlackServer:
    """Threaded HTTP server on 127.0.0.1, port chosen by the OS. Use as a context manager."""

    def __init__(self, token: str = "xoxb-test-0123456789-secret") -> None:
        self.token = token
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel id, ts) -> current message
        self.files: dict[str, SlackFile] = {}  # file id -> file, in upload order
        self._calls: list[SlackCall] = []
        self._script: list[_Scripted] = []
        self._channels: dict[str, str] = {}
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.on_call: Callable[[str, str], bool | None] | None = None
        self._limited_until = 0.0
        self._channel_rate: tuple[float, int] | None = None
        self._channel_tokens: dict[str, tuple[float, float]] = {}
        self.rate_limited = 0  # 429s answered by the per-channel limit
        self._limit_wait: Callable[[], float] = lambda: 1.0
        self.posts: list[dict[str, Any]] = []  # every message as posted (chat.update rewrites .messages)
        self.clock: Callable[[], float] = time.time  # the time in ``ts``: tests with a fixed clock set it
        self.page_size = 100  # conversations.history / replies messages per page
        # Socket Mode: the app-level token apps.connections.open accepts, and the websocket URL it
        # answers (a ``socket_mode_server.SocketModeServer`` on 127.0.0.1).
        self.app_token = "xapp-1-test-0123456789-secret"
        self.socket_url: str | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-slack", daemon=True
        )

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SlackServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)`` and ``SlackReceiver.base_url``."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{WEBHOOK_PATH}"

    # ------------------------------------------------------------------ scripting and inspection

    def rate_limit(self, times: int = 1, retry_after: float = 1, method: str | None = None) -> None:
        """The next ``times`` calls (to ``method``, or any) answer HTTP 429 with ``Retry-After``."""
        with self._lock:
            self._script.append(_Scripted(429, "ratelimited", retry_after, method, times))

    def fail(self, error: str, times: int = 1, status: int | None = None, method: str | None = None) -> None:
        """The next ``times`` calls answer ``error``: HTTP 200 ``{"ok": false}`` for the Web API (or
        ``status`` if given), Slack's 4xx status and a plain-text body for the webhook."""
        with self._lock:
            self._script.append(_Scripted(status or 0, error, None, method, times))

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    # ------------------------------------------------------------------ handling (server threads)

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Record one request and answer it. Header names are normalised to Title-Case. Query
        parameters (slack-sdk sends some methods' arguments so) are merged into the body."""
        path, _, query = path.partition("?")
        method = _method(path)
        if method == "upload":  # the file's bytes, whatever the content type says
            body: dict[str, Any] = {"length": len(raw)}
        else:
            body = {**dict(parse_qsl(query)), **_parse(headers.get("Content-Type", ""), raw)}
        call = SlackCall(method, path, body, headers, time.time())
        with self._lock:
            self._calls.append(call)
            scripted = self._next_scripted(method) or self._limited(method, body)
            if scripted is not None:
                return _scripted_reply(scripted, webhook=method == "webhook")
            if method == "webhook":
                return _webhook_reply(path, call.body)
            if method == "upload":
                return self._upload(path.removeprefix("/upload/v1/"), raw)
            if method == "apps.connections.open":
                return _api_reply(self._connections_open(headers))
            if headers.get("Authorization") != f"Bearer {self.token}":
                return _api_reply({"ok": False, "error": "invalid_auth"})
            return _api_reply(self._api(method, call.body))

    def rate_limit_until(self, deadline: float, retry_after: Callable[[], float]) -> None:
        """Every Web API call answers 429 until ``deadline`` (``time.time()``), each with a
        ``Retry-After`` of ``retry_after()`` seconds (a rate-limit storm)."""
        with self._lock:
            self._limited_until, self._limit_wait = deadline, retry_after

    def limit_channel_rate(self, per_second: float, burst: int) -> None:
        """Answer ``chat.postMessage`` 429 (Retry-After 1) when a channel gets more than
        ``per_second`` messages a second on average, ``burst`` at once: Slack's per-channel limit."""
        with self._lock:
            self._channel_rate = (per_second, burst)

    def _limited(self, method: str, body: dict[str, Any]) -> _Scripted | None:
        if method == "chat.postMessage" and self._channel_rate is not None:
            per_second, burst = self._channel_rate
            tokens, at = self._channel_tokens.get(str(body.get("channel")), (float(burst), time.time()))
            now = time.time()
            tokens = min(float(burst), tokens + (now - at) * per_second)
            if tokens < 1:
                self._channel_tokens[str(body.get("channel"))] = (tokens, now)
                self.rate_limited += 1
                return _Scripted(429, "ratelimited", 1, None, 1)
            self._channel_tokens[str(body.get("channel"))] = (tokens - 1, now)
        if method in ("webhook", "upload") or time.time() >= self._limited_until:
            return None
        return _Scripted(429, "ratelimited", round(self._limit_wait()), None, 1)

    def _next_scripted(self, method: str) -> _Scripted | None:
        for scripted in self._script:
            if scripted.method in (None, method):
                scripted.times -= 1
                if scripted.times <= 0:
                    self._script.remove(scripted)
                return scripted
        return None

    def _api(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "team": "test", "user": "watcher"}
        if method == "files.getUploadURLExternal":
            return self._upload_url(body)
        if method == "files.completeUploadExternal":
            return self._complete_upload(body)
        if method in ("conversations.history", "conversations.replies"):
            return self._history(body, thread=method == "conversations.replies")
        if method == "conversations.list":
            channels = [{"id": cid, "name": name.lstrip("#")} for name, cid in self._channels.items()]
            return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
        if method == "chat.postEphemeral":  # seen by ``user`` only; Slack keeps no message
            ok = bool(body.get("channel") and body.get("user"))
            return (
                {"ok": True, "message_ts": self._next_ts()}
                if ok
                else {"ok": False, "error": "user_not_in_channel"}
            )
        if method not in ("chat.postMessage", "chat.update"):
            return {"ok": False, "error": "unknown_method"}
        if not body.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if _breaks_limits(body):
            return {"ok": False, "error": "invalid_blocks"}
        channel = self._channel_id(str(body["channel"]))
        if method == "chat.update":
            key = (channel, str(body.get("ts")))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {**self.messages[key], **body, "channel": channel}
            return {"ok": True, "channel": channel, "ts": key[1], "text": body.get("text", "")}
        ts = self._next_ts()
        self.messages[(channel, ts)] = {**body, "channel": channel, "ts": ts}
        self.posts.append(self.messages[(channel, ts)])
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text", "")}}

    def _connections_open(self, headers: dict[str, str]) -> dict[str, Any]:
        """Socket Mode's first call: an app-level token gets the websocket URL to connect to."""
        if headers.get("Authorization") != f"Bearer {self.app_token}":
            return {"ok": False, "error": "invalid_auth"}
        if self.socket_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_url}

    def _next_ts(self) -> str:
        """Slack's ``ts``: the post's Unix time, unique (the counter) and increasing."""
        return f"{int(self.clock())}.{next(self._ts):06d}"

    def _history(self, body: dict[str, Any], thread: bool) -> dict[str, Any]:
        """A channel's top-level messages (or one thread's), newest first, paged by ``cursor``."""
        channel = str(body.get("channel", ""))
        if channel not in {key[0] for key in self.messages}:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(body.get("oldest") or 0)
        found = [
            m
            for (cid, ts), m in self.messages.items()
            if cid == channel
            and float(ts) >= oldest
            and (
                m.get("thread_ts") == body.get("ts") or ts == body.get("ts")
                if thread
                else not m.get("thread_ts")
            )
        ]
        found.sort(key=lambda m: float(m["ts"]), reverse=not thread)
        with_metadata = str(body.get("include_all_metadata")) in ("1", "true", "True")
        shown = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in found]
        start = int(body.get("cursor") or 0)
        page = shown[start : start + self.page_size]
        more = start + self.page_size < len(shown)
        cursor = str(start + self.page_size) if more else ""
        return {"ok": True, "messages": page, "has_more": more, "response_metadata": {"next_cursor": cursor}}

    def _upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("filename") or not str(body.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = SlackFile(file_id, str(body["filename"]), int(body["length"]))
        return {"ok": True, "upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, raw: bytes) -> Reply:
        file = self.files.get(file_id)
        if file is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        file.data = raw
        return 200, {"Content-Type": "text/plain"}, f"OK - {len(raw)}".encode()

    def _complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        entries = _decoded(body.get("files")) or []
        done = []
        for entry in entries:
            file = self.files.get(str(entry.get("id")))
            if file is None or len(file.data) != file.length:
                return {"ok": False, "error": "file_not_found"}
            done.append((file, entry))
        channel = body.get("channel_id")
        if channel and self._channel_id(str(channel)) not in {key[0] for key in self.messages}:
            return {"ok": False, "error": "channel_not_found"}
        for file, entry in done:
            file.title, file.channel, file.thread_ts = (
                str(entry.get("title") or ""),
                channel,
                body.get("thread_ts"),
            )
        if channel and body.get("thread_ts") and done:  # Slack shows the share as a reply
            cid, ts = self._channel_id(str(channel)), self._next_ts()
            files = [{"id": f.id, "name": f.filename, "title": f.title} for f, _ in done]
            self.messages[(cid, ts)] = {
                "channel": cid,
                "ts": ts,
                "thread_ts": body["thread_ts"],
                "files": files,
            }
        return {"ok": True, "files": [{"id": f.id, "name": f.filename, "title": f.title} for f, _ in done]}

    def _channel_id(self, name: str) -> str:
        # Slack answers with channel IDs; a name (#alerts) maps to a stable fake ID, IDs stay as they are.
        if name.startswith("C") and name[1:].isalnum() and name.isupper():
            return name
        return self._channels.setdefault(name, f"C{len(self._channels) + 1:08d}")


def _method(path: str) -> str:
    if path.startswith("/services/"):
        return "webhook"
    if path.startswith("/upload/"):
        return "upload"
    return path.removeprefix("/api/")


def _parse(content_type: str, raw: bytes) -> dict[str, Any]:
    if "json" in content_type:
        parsed = json.loads(raw or b"{}")
        return parsed if isinstance(parsed, dict) else {"_": parsed}
    return dict(parse_qsl(raw.decode("utf-8")))


Reply = tuple[int, dict[str, str], bytes]  # status, headers, body


def _api_reply(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    content = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return status, content, json.dumps(body).encode()


def _webhook_reply(path: str, body: dict[str, Any]) -> Reply:
    if path != WEBHOOK_PATH:
        return 404, {"Content-Type": "text/html"}, b"no_service"
    if _breaks_limits(body):
        return 400, {"Content-Type": "text/html"}, b"invalid_blocks"
    return 200, {"Content-Type": "text/html"}, b"ok"


def _breaks_limits(body: dict[str, Any]) -> bool:
    """Slack's Block Kit limits: at most 50 blocks per message, section texts of at most 3000 chars."""
    attachments = _decoded(body.get("attachments")) or []
    for blocks in [_decoded(body.get("blocks")) or [], *(a.get("blocks", []) for a in attachments)]:
        texts = [block.get("text", {}).get("text", "") for block in blocks if block.get("type") == "section"]
        if len(blocks) > MAX_BLOCKS or any(len(text) > MAX_SECTION_TEXT for text in texts):
            return True
    return False


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # form-encoded bodies carry JSON strings


def _scripted_reply(scripted: _Scripted, webhook: bool) -> Reply:
    headers = {} if scripted.retry_after is None else {"Retry-After": f"{scripted.retry_after:g}"}
    if webhook:
        status = scripted.status or WEBHOOK_STATUSES.get(scripted.error, 400)
        return status, {"Content-Type": "text/html", **headers}, scripted.error.encode()
    return _api_reply({"ok": False, "error": scripted.error}, scripted.status or 200, headers)


def _handler(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(raw)

        def do_GET(self) -> None:
            self._answer(b"")

        def _answer(self, raw: bytes) -> None:
            method = _method(self.path.partition("?")[0])
            hook = server.on_call
            if hook is not None and hook(method, "received"):
                self.close_connection = True  # dropped: the request never reached "Slack"
                return
            status, headers, body = server.handle(
                self.path, {k.title(): v for k, v in self.headers.items()}, raw
            )
            if hook is not None:
                hook(method, "handled")
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up waiting (a timeout test)
            if hook is not None:
                hook(method, "answered")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the calls are recorded instead."""

    return Handler

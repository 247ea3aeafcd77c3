"""The tick's ``_msearch`` sent on the client's own urllib3 pool, past the client's per-request layers.

Why: the daemon sends about one ``_msearch`` per tick (8 KB asked, 14 KB answered for the bench's
10 rules), and through the client API it cost 1.4-1.9 ms of watcher's CPU against ~0.9 ms for
the same request over bare ``http.client``, with a tick's goal at 5 ms. Much of the difference is
per-request work whose result watcher throws away: opensearch-py copies the headers, decodes the
answer to ``str``, times and counts the request, lower-cases the answer's headers into a new dict,
resolves query parameters through a decorator and formats log lines; elasticsearch-py converts
media types with a regex, wraps headers in ``HttpHeaders`` twice, formats an INFO line eagerly
and wraps the answer in an ``ObjectApiResponse``. ``bench/bench_msearch_path.py`` measures it:
~0.15-0.35 ms less per request. What remains (~0.35 ms) is urllib3's own request and response
handling, kept: it checks for dropped connections and raises the errors the clients classify.

What stays the client's: the hosts and the choice among them (``get_connection`` /
``node_pool.get``, with dead hosts skipped and marked as the client marks them), the pool with its
TLS settings, the auth and user-agent headers, the path prefix, the request timeout. The request
on the wire is the one the client sends (same target, headers and body). Failures are raised as
the client's own exception classes with the client's own messages, so ``search_client`` maps them
to ``UnreachableError`` / ``RequestTimeoutError`` / ``RejectedError`` in one place, as before;
the answer is read by ``read_json`` from bytes.

The short path is not taken (``None``: the client's API is called) when it could differ from the
client: a connection or node class that overrides ``perform_request`` (it may count, sign or
rewrite), a callable ``http_auth`` (request signing), compression, metrics, sniffing, serverless
Elasticsearch, the first answer before elasticsearch-py has checked the server's product header,
or when the client's own loggers are enabled at INFO (so a user debugging the client sees every
request logged). An unknown client version (a missing attribute) falls back the same way.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util.retry import Retry

from watcher.store.dsl import Json

log = logging.getLogger("watcher.store.search")

Msearch = Callable[[str, bytes, str], Json]
"""``msearch(index, lines, filter_path)``: one ``_msearch`` answer, as the client returns it."""

_NO_RETRY = Retry(False)
_WARNING = re.compile(r'"([^"]*)"')  # elasticsearch-py's reading of a Warning header


def _target(index: str, query: str) -> str:
    """``/<index>/_msearch?<query>``, the index quoted as both clients quote it."""
    return f"/{quote(index, safe=',*')}/_msearch?{query}"


def _short_or(api: Msearch, short: Callable[[], Msearch | None]) -> Msearch:
    """The short path, or ``api`` when it does not apply or the client is a version it does not know."""
    try:
        found = short()
    except (ImportError, AttributeError) as exc:
        log.debug("_msearch through the client API: %s", exc)
        return api
    return found if found is not None else api


# --------------------------------------------------------------------------- opensearch-py


def opensearch_msearch(client: Any, api: Msearch) -> Msearch:
    """``msearch`` on opensearch-py's connection pool; ``api`` (the client call) where it may differ."""
    return _short_or(api, lambda: _opensearch_short(client, api))


def _opensearch_short(client: Any, api: Msearch) -> Msearch | None:
    from opensearchpy import Transport
    from opensearchpy.connection import Urllib3HttpConnection
    from opensearchpy.exceptions import ConnectionError, ConnectionTimeout, SSLError
    from opensearchpy.metrics import MetricsNone

    from watcher.store.search_client import read_json

    transport = client.transport
    if type(transport).perform_request is not Transport.perform_request or transport.sniffer_timeout:
        return None
    for connection in transport.connection_pool.connections:
        if (
            type(connection).perform_request is not Urllib3HttpConnection.perform_request
            or connection.http_compress
            or callable(connection.http_auth)
            or not isinstance(connection.metrics, MetricsNone)
            or not isinstance(connection.headers, dict)
        ):
            return None
        # what a request reads, so that a client version without it falls back here, not mid-tick
        _ = (connection.url_prefix, connection.host, connection._create_urllib3_pool)
        _ = (connection.log_request_fail, connection._raise_error, connection._raise_warnings)
    _ = (transport.get_connection, transport.mark_dead, transport.connection_pool.mark_live)
    loggers = (logging.getLogger("opensearch"), logging.getLogger("opensearchpy.trace"))

    def msearch(index: str, lines: bytes, filter_path: str) -> Json:
        if any(logger.isEnabledFor(logging.INFO) for logger in loggers):
            return api(index, lines, filter_path)
        connection = transport.get_connection()
        if connection.pool is None:
            connection._create_urllib3_pool()
        url = connection.url_prefix + _target(index, urlencode({"filter_path": filter_path}))
        started = time.time()
        try:
            response = connection.pool.urlopen(
                "POST", url, lines, retries=_NO_RETRY, headers=connection.headers.copy()
            )
            data: bytes = response.data
        except RecursionError:
            raise
        except Exception as exc:
            # as Urllib3HttpConnection.perform_request and Transport.perform_request do
            connection.log_request_fail(
                "POST", connection.host + url, url, lines, time.time() - started, exception=exc
            )
            if isinstance(exc, ReadTimeoutError):
                raise ConnectionTimeout("TIMEOUT", str(exc), exc) from exc
            transport.mark_dead(connection)
            if isinstance(exc, Urllib3SSLError):
                raise SSLError("N/A", str(exc), exc) from exc
            raise ConnectionError("N/A", str(exc), exc) from exc
        if "warning" in response.headers:
            connection._raise_warnings(response.headers.get_all("warning"))
        if not 200 <= response.status < 300:
            text = data.decode("utf-8", "surrogatepass")
            duration = time.time() - started
            connection.log_request_fail(
                "POST", connection.host + url, url, lines, duration, response.status, text
            )
            connection._raise_error(response.status, text, response.headers.get("content-type"))
        transport.connection_pool.mark_live(connection)
        return dict(read_json(data)) if data else {}

    return msearch


# --------------------------------------------------------------------------- elasticsearch-py


def elasticsearch_msearch(client: Any, api: Msearch) -> Msearch:
    """``msearch`` on elasticsearch-py's node pools; ``api`` (the client call) where it may differ."""
    return _short_or(api, lambda: _elasticsearch_short(client, api))


def _elasticsearch_short(client: Any, api: Msearch) -> Msearch | None:
    from elastic_transport import Transport, Urllib3HttpNode
    from elastic_transport._transport import NOT_DEAD_NODE_HTTP_STATUSES
    from elastic_transport.client_utils import DEFAULT
    from elasticsearch._sync.client._base import _COMPAT_MIMETYPE_RE, _COMPAT_MIMETYPE_SUB
    from elasticsearch.exceptions import ElasticsearchWarning

    from watcher.store.search_client import read_json

    transport = client.transport
    if (
        type(transport).perform_request is not Transport.perform_request
        or transport._sniff_before_requests
        or transport._sniff_on_node_failure
        or client._is_serverless
    ):
        return None
    for node in transport.node_pool.all():
        if type(node).perform_request is not Urllib3HttpNode.perform_request or node._http_compress:
            return None
        _ = (node.pool.urlopen, node.path_prefix, node.config)  # as on opensearch-py: read here, once
    pool = transport.node_pool
    _ = (
        pool.get,
        pool.mark_live,
        pool.mark_dead,
        transport.serializers.loads,
        client._verified_elasticsearch,
    )
    # the headers elasticsearch-py sends with an _msearch: its own (auth), the media types in their
    # compatibility form, the client meta header, under the node's own (user agent)
    asked = {"accept": "application/json", "content-type": "application/x-ndjson"}
    compat = client._headers.copy()
    compat.update(asked)
    for name in asked:
        compat[name] = _COMPAT_MIMETYPE_RE.sub(_COMPAT_MIMETYPE_SUB, compat[name])
    if transport.meta_header:
        meta = transport._transport_client_meta + (
            () if client._client_meta is DEFAULT else client._client_meta
        )
        compat["x-elastic-client-meta"] = ",".join(f"{k}={v}" for k, v in meta)
    sent = dict(compat.items())
    timeout = {} if client._request_timeout is DEFAULT else {"timeout": client._request_timeout}
    headers = {id(node): {**dict(node._headers.items()), **sent} for node in transport.node_pool.all()}
    loggers = (logging.getLogger("elastic_transport.transport"), logging.getLogger("elastic_transport.node"))

    def msearch(index: str, lines: bytes, filter_path: str) -> Json:
        if not client._verified_elasticsearch or any(logger.isEnabledFor(logging.INFO) for logger in loggers):
            return api(index, lines, filter_path)  # the client checks the product header once
        node = transport.node_pool.get()
        target = node.path_prefix + _target(index, f"filter_path={quote(filter_path, safe=',*')}")
        started = time.time()
        try:
            response = node.pool.urlopen(
                "POST", target, body=lines, retries=_NO_RETRY, headers=headers[id(node)].copy(), **timeout
            )
            data: bytes = response.data
        except RecursionError:
            raise
        except Exception as exc:
            failure = _elasticsearch_failure(exc)
            if failure is exc:
                raise
            transport.node_pool.mark_dead(node)  # a timeout too, as elasticsearch-py's transport does
            raise failure from exc
        status = response.status
        if 200 <= status < 299 or status in NOT_DEAD_NODE_HTTP_STATUSES:
            transport.node_pool.mark_live(node)
        else:
            transport.node_pool.mark_dead(node)
        if not 200 <= status < 299:
            raise _elasticsearch_rejection(transport, node, response, data, time.time() - started)
        if "warning" in response.headers:
            for text in _WARNING.findall(response.headers["warning"].strip()) or (
                response.headers["warning"],
            ):
                warnings.warn(text, category=ElasticsearchWarning, stacklevel=2)
        return dict(read_json(data)) if data else {}

    return msearch


def _elasticsearch_failure(exc: Exception) -> Exception:
    """A urllib3 failure as ``Urllib3HttpNode.perform_request`` raises it; ``exc`` itself when
    the node lets it through (Python's own errors: a bug, not the store)."""
    from elastic_transport import ConnectionError, ConnectionTimeout, TlsError
    from elastic_transport._node._base import BUILTIN_EXCEPTIONS

    if isinstance(exc, NewConnectionError):
        return ConnectionError(str(exc), errors=(exc,))
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
        return ConnectionTimeout("Connection timed out during request", errors=(exc,))
    if isinstance(exc, (ssl.SSLError, Urllib3SSLError)):
        return TlsError(str(exc), errors=(exc,))
    if isinstance(exc, BUILTIN_EXCEPTIONS):
        return exc
    return ConnectionError(str(exc), errors=(exc,))


def _elasticsearch_rejection(
    transport: Any, node: Any, response: Any, data: bytes, duration: float
) -> Exception:
    """An error answer as elasticsearch-py raises it: the ``ApiError`` of its status, with the
    answer read by the client's serializers and the error's type as its message."""
    from elastic_transport import ApiResponseMeta, HttpHeaders
    from elasticsearch.exceptions import HTTP_EXCEPTIONS, ApiError

    headers = HttpHeaders(response.headers)
    meta = ApiResponseMeta(
        node=node.config, duration=duration, http_version="1.1", status=response.status, headers=headers
    )
    body = transport.serializers.loads(data, meta.mimetype)
    message: Any = body.get("error", str(body)) if isinstance(body, dict) else str(body)
    if isinstance(message, dict) and "type" in message:
        message = message["type"]
    return HTTP_EXCEPTIONS.get(response.status, ApiError)(message=message, meta=meta, body=body)

"""The two search clients behind one small interface, with their errors in three kinds.

elasticsearch-py 9 (Elasticsearch 8/9) and opensearch-py differ in constructor arguments, call
signatures and exception classes; ``SearchStore`` sees only ``Backend`` and ``UnreachableError`` /
``RequestTimeoutError`` / ``RejectedError``. Client-side retries are switched off: the store applies one retry
policy (``backoff``) to both clients.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, cast
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from watcher.config import SearchSource
from watcher.store.answers import error_message
from watcher.store.dsl import Json

log = logging.getLogger("watcher.store.search")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_OBJECT_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-f]+>:?\s*")
_VERIFY_FAILED = re.compile(r"certificate verify failed: ([^()\]\['\"|]+)", re.IGNORECASE)


class UnreachableError(Exception):
    """No answer: connection refused or reset, name resolution, TLS handshake."""


class RequestTimeoutError(Exception):
    """The store did not answer within the request timeout."""


class RejectedError(Exception):
    """The store answered with an error status (``status`` 0 when the answer was unreadable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Backend(Protocol):
    describe: str

    def msearch(self, index: str, lines: bytes, filter_path: str) -> Json:
        """One ``_msearch`` of ``lines``, the request body already encoded (NDJSON)."""

    def field_caps(self, index: str, fields: list[str]) -> Json: ...

    def bulk(self, index: str, operations: list[Json]) -> Json: ...

    def ensure_index(self, index: str, mappings: Json) -> Json: ...

    def refresh(self, index: str) -> Json: ...

    def info(self) -> Json: ...

    def close(self) -> None: ...


def read_json(data: str | bytes) -> Any:
    """An answer's JSON as ``json.loads`` reads it. orjson's parser goes first: it reads a tick's
    ``_msearch`` answer in half the CPU, and numbers alike (integers up to an ``unsigned_long``'s
    2**64 - 1, the largest a store sends). What it refuses and ``json`` accepts (``NaN``, lone
    surrogates) is read by ``json``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def backoff(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait before retry ``attempt + 1``: exponential, capped, with full jitter in the
    upper half so many watchers do not retry in step."""
    jitter: float = random.uniform(0.5, 1.0)
    return min(cap, base * 2.0**attempt) * jitter


def open_backend(source: SearchSource, options: dict[str, Any]) -> Backend:
    """The client for ``source.store``; ``options`` go to the client constructor unchanged."""
    tls = tls_options(source)
    auth = auth_options(source)
    if source.store == "elasticsearch":
        return ElasticsearchBackend(source, {**tls, **auth, **options})
    return OpenSearchBackend(source, {**tls, **auth, **options})


def safe_hosts(hosts: list[str]) -> str:
    """Hosts for messages and logs, with any ``user:password@`` removed."""
    cleaned = []
    for host in hosts:
        parts = urlsplit(host)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        cleaned.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")) if parts.scheme else host)
    return ", ".join(cleaned)


def tls_options(source: SearchSource) -> dict[str, Any]:
    """CA bundle, client certificate, verification. Verification is on unless switched off, and
    switching it off is logged, because it lets anyone on the path read the logs and the key."""
    https = any(host.startswith("https://") for host in source.hosts)
    files = {"ca_certs": source.ca_certs, "client_cert": source.client_cert, "client_key": source.client_key}
    given = {name: str(path) for name, path in files.items() if path is not None}
    if given and not https:
        raise ValueError(f"{', '.join(sorted(given))} need https:// hosts, got {safe_hosts(source.hosts)}")
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise ValueError(f"{name} file {path} does not exist")
    if not https:
        return {}
    if not source.verify_certs:
        log.warning(
            "TLS certificate verification is off for %s: the connection can be intercepted",
            safe_hosts(source.hosts),
        )
    return {**given, "verify_certs": source.verify_certs, "ssl_show_warn": False}


def auth_options(source: SearchSource) -> dict[str, Any]:
    """Exactly one of API key, basic auth (username + password) or bearer token, or none."""
    kinds = [
        name
        for name, value in (
            ("api_key", source.api_key),
            ("username/password", source.username or source.password),
            ("bearer_token", source.bearer_token),
        )
        if value
    ]
    if len(kinds) > 1:
        raise ValueError(f"a search source takes one kind of credentials, got {' and '.join(kinds)}")
    if (source.username is None) != (source.password is None):
        raise ValueError("basic auth needs both 'username' and 'password'")
    if source.api_key is not None:
        return {"headers": {"authorization": f"ApiKey {source.api_key.get_secret_value()}"}}
    if source.bearer_token is not None:
        return {"headers": {"authorization": f"Bearer {source.bearer_token.get_secret_value()}"}}
    if source.username is not None and source.password is not None:
        return {"http_auth": (source.username, source.password.get_secret_value())}
    return {}


def failure_reason(exc: BaseException) -> str:
    """A short reason for a transport failure, from the exception and the errors that caused it
    (the clients nest urllib3 and ssl errors, with object reprs, several levels deep)."""
    texts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(texts) < 6:
        texts.append(_OBJECT_REPR.sub("", str(getattr(current, "message", "") or current)))
        current = current.__cause__ or current.__context__
    text = " | ".join(texts)
    if "Connection refused" in text:
        return "connection refused"
    verify = _VERIFY_FAILED.search(text)
    if verify:
        return f"TLS certificate verify failed: {verify.group(1).strip()}"
    if "Read timed out" in text:
        return "read timed out"
    return texts[-1]


# --------------------------------------------------------------------------- elasticsearch-py


class ElasticsearchBackend:
    def __init__(self, source: SearchSource, options: dict[str, Any]) -> None:
        from elasticsearch import Elasticsearch
        from elasticsearch.serializer import JsonSerializer

        class Answers(JsonSerializer):
            def json_loads(self, data: bytes) -> Any:
                return read_json(data)

        options.setdefault("serializers", {JsonSerializer.mimetype: Answers()})
        if "http_auth" in options:
            options["basic_auth"] = options.pop("http_auth")
        self.describe = f"elasticsearch at {safe_hosts(source.hosts)}"
        self.client = Elasticsearch(
            source.hosts,
            request_timeout=source.timeout.total_seconds(),
            max_retries=0,
            retry_on_status=(),
            retry_on_timeout=False,
            **options,
        )

    def msearch(self, index: str, lines: bytes, filter_path: str) -> Json:
        # The client sends an encoded body as it is (its NDJSON serializer passes bytes through).
        searches = cast(Any, lines)
        with _elasticsearch_errors():
            return dict(self.client.msearch(index=index, searches=searches, filter_path=filter_path).body)

    def field_caps(self, index: str, fields: list[str]) -> Json:
        # The client sends the field list in a body, which not every server reads; the query
        # string works everywhere.
        with _elasticsearch_errors():
            answer = self.client.perform_request(
                "GET",
                f"/{quote(index, safe=',*')}/_field_caps",
                params={"fields": ",".join(fields)},
                headers={"accept": "application/json"},
            )
            return dict(answer.body)

    def bulk(self, index: str, operations: list[Json]) -> Json:
        with _elasticsearch_errors():
            return dict(self.client.bulk(index=index, operations=operations).body)

    def ensure_index(self, index: str, mappings: Json) -> Json:
        with _elasticsearch_errors():
            if self.client.indices.exists(index=index):
                return {"created": False}
            self.client.indices.create(index=index, mappings=mappings)
            return {"created": True}

    def refresh(self, index: str) -> Json:
        with _elasticsearch_errors():
            return dict(self.client.indices.refresh(index=index).body)

    def info(self) -> Json:
        with _elasticsearch_errors():
            return dict(self.client.info().body)

    def close(self) -> None:
        self.client.close()


@contextmanager
def _elasticsearch_errors() -> Iterator[None]:
    import elastic_transport
    import elasticsearch

    try:
        yield
    except elastic_transport.ConnectionTimeout as exc:
        raise RequestTimeoutError(failure_reason(exc)) from exc
    except elastic_transport.ConnectionError as exc:
        raise UnreachableError(failure_reason(exc)) from exc
    except elasticsearch.ApiError as exc:
        body = exc.body if isinstance(exc.body, Mapping) else {}
        raise RejectedError(exc.meta.status, error_message(body.get("error", exc.message))) from exc
    except elastic_transport.TransportError as exc:
        raise RejectedError(0, failure_reason(exc)) from exc


# --------------------------------------------------------------------------- opensearch-py


class OpenSearchBackend:
    def __init__(self, source: SearchSource, options: dict[str, Any]) -> None:
        from opensearchpy import OpenSearch
        from opensearchpy.serializer import JSONSerializer

        class Answers(JSONSerializer):
            def loads(self, s: str) -> Any:
                return read_json(s)

        options.setdefault("serializer", Answers())
        self.describe = f"opensearch at {safe_hosts(source.hosts)}"
        self.client = OpenSearch(
            source.hosts,
            timeout=source.timeout.total_seconds(),
            max_retries=0,
            retry_on_status=(),
            retry_on_timeout=False,
            **options,
        )

    def msearch(self, index: str, lines: bytes, filter_path: str) -> Json:
        with _opensearch_errors():
            return dict(self.client.msearch(body=lines, index=index, params={"filter_path": filter_path}))

    def field_caps(self, index: str, fields: list[str]) -> Json:
        with _opensearch_errors():
            return dict(self.client.field_caps(index=index, params={"fields": ",".join(fields)}))

    def bulk(self, index: str, operations: list[Json]) -> Json:
        with _opensearch_errors():
            return dict(self.client.bulk(body=operations, index=index))

    def ensure_index(self, index: str, mappings: Json) -> Json:
        with _opensearch_errors():
            if self.client.indices.exists(index=index):
                return {"created": False}
            self.client.indices.create(index=index, body={"mappings": mappings})
            return {"created": True}

    def refresh(self, index: str) -> Json:
        with _opensearch_errors():
            return dict(self.client.indices.refresh(index=index))

    def info(self) -> Json:
        with _opensearch_errors():
            return dict(self.client.info())

    def close(self) -> None:
        self.client.close()


@contextmanager
def _opensearch_errors() -> Iterator[None]:
    from opensearchpy import exceptions

    try:
        yield
    except exceptions.ConnectionTimeout as exc:
        raise RequestTimeoutError(failure_reason(exc)) from exc
    except exceptions.ConnectionError as exc:
        raise UnreachableError(failure_reason(exc)) from exc
    except exceptions.TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        info = exc.info if isinstance(exc.info, Mapping) else {}
        raise RejectedError(status, error_message(info.get("error", exc.error))) from exc

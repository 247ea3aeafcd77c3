"""The Elasticsearch / OpenSearch log store: every aggregate computed in the store.

One tick's queries go out as ``_msearch`` requests of at most ``msearch_max`` searches, after
fusing queries that share window, filter and grouping into one search (see ``dsl``). Pages of a
grouped search that needs more than one page go out together in the next round. A search that
fails fails only the queries it answers: a fused search that fails is retried query by query so
one bad rule never takes its neighbours down. Before anything is sent, each query is checked
against the index mapping (``_field_caps``, cached ``mapping_ttl`` seconds), because the store
answers a query on an unmapped field or a missing index with an empty result that would read as
"no traffic".

``StoreError`` means nothing could be answered: the server is unreachable after the bounded
retries, or it refused our credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.config import SearchSource
from watcher.query import Group, Query, QueryResult
from watcher.store.answers import error_message, shard_failure
from watcher.store.base import StoreError
from watcher.store.dsl import FusedSearch, Json, fuse
from watcher.store.dsl_bodies import BodyCache, encode
from watcher.store.dsl_pages import read_page
from watcher.store.first_document import FirstDocument
from watcher.store.mapping_check import FieldCatalog, fields_used, query_problem
from watcher.store.search_client import (
    RETRY_STATUSES,
    Backend,
    RejectedError,
    RequestTimeoutError,
    UnreachableError,
    backoff,
    open_backend,
)
from watcher.store.search_wire import KeptAlive

log = logging.getLogger("watcher.store.search")

UNMAPPED_TTL = 60.0
QueryKey = tuple[object, ...]
LOGGED_IDS = 5

# Only what the parser reads comes back over the wire.
MSEARCH_FILTER_PATH = ",".join(
    f"responses.{part}"
    for part in (
        "status",
        "error",
        "timed_out",
        "_shards.failed",
        "_shards.failures",
        "hits.total",
        "aggregations",
    )
)


class RequestFailed(str):
    """An ``_msearch`` request failed as a whole (timeout, rejected): its searches are not retried
    one by one, which would only repeat the load that made it fail."""

    __slots__ = ()


class SearchStore:
    """A ``LogStore`` over an Elasticsearch (8/9) or OpenSearch index pattern.

    ``client_options`` are passed to the client constructor as they are (tests use it to plug a
    node class in), and then every request goes through that client; without them the tick's
    ``_msearch`` is sent on kept-alive connections of the standard library
    (``watcher.store.search_wire``). ``clock`` and ``sleep`` drive the mapping cache and the retry
    backoff.
    """

    live_partials = True
    """The daemon's live ticks read it through per-bucket partials (``watcher.process.daemon``)."""
    one_request = True
    """A batch is one ``_msearch`` (of ``msearch_max`` searches at most), whatever it holds: the
    per-bucket partials ask the newest buckets and the windows read in full in one call, and only
    what waits for their answer (an alert's evidence, ``Query.only_if``) in a second."""

    def __init__(
        self,
        source: SearchSource,
        *,
        client_options: Mapping[str, Any] | None = None,
        page_size: int = 1000,
        max_groups: int = 100_000,
        mapping_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.page_size = page_size
        self.max_groups = max_groups
        self.mapping_ttl = mapping_ttl
        self.round_trips = 0
        self._clock = clock
        self._sleep = sleep
        backend = open_backend(source, dict(client_options or {}))
        self._backend: Backend = backend if client_options else KeptAlive(backend, source)
        self._fields: dict[str, tuple[frozenset[str], float]] = {}
        self._indices: tuple[tuple[str, ...], float] = ((), float("-inf"))
        self._bodies = BodyCache(source.time_field, page_size)
        self._reads: dict[QueryKey, tuple[tuple[object, ...], set[str]]] = {}
        self._problems: dict[QueryKey, str | None] = {}  # for the mapping fetched last
        self._first = FirstDocument(source, lambda body: self._msearch([encode(body)])[0], clock)

    @property
    def describe(self) -> str:
        """``opensearch at http://host:9200 (index logs-*)``, without credentials."""
        return f"{self._backend.describe} (index {self.source.index})"

    # ------------------------------------------------------------------ LogStore

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        if not queries:
            return []
        if len(self._reads) > 2 * len(queries) + 64:  # shapes of queries made afresh, rules reloaded
            self._reads.clear()
            self._problems.clear()
        keys = [self._read_by(query) for query in queries]
        catalog = self.catalog({self.source.time_field}.union(*(self._reads[key][1] for key in keys)))
        errors: dict[int, str] = {}
        runnable: list[tuple[int, Query]] = []
        for position, (key, query) in enumerate(zip(keys, queries, strict=True)):
            problem = _window_problem(query) or self._problem(key, catalog, query)
            if problem:
                errors[position] = problem
            else:
                runnable.append((position, query))
        answered = self._answer(fuse(runnable), catalog, errors)
        self._log_errors(queries, errors)
        return [
            QueryResult(query.id, error=errors[position])
            if position in errors
            else QueryResult(query.id, groups=answered[position])
            for position, query in enumerate(queries)
        ]

    def _read_by(self, query: Query) -> QueryKey:
        """The query's shape (its filter, grouping and aggregates, by identity: a rule asks with the
        same objects at every tick), with the fields it reads kept for it: walking every query's
        filter and aggregates at every tick cost more than the mapping check itself."""
        aggregates = tuple(query.aggregates.values())
        key = (id(query.where), query.group_by, *map(id, aggregates))
        if key not in self._reads:
            # the objects are kept with it, so no other object takes their ids while it is kept
            self._reads[key] = ((query.where, aggregates), fields_used(self.source.time_field, [query]))
        return key

    def _problem(self, key: QueryKey, catalog: FieldCatalog, query: Query) -> str | None:
        """Why ``query`` cannot be answered from the mapping (``query_problem``), found once per
        shape while the mapping is the same."""
        if key not in self._problems:
            self._problems[key] = query_problem(catalog, self.source.time_field, query)
        return self._problems[key]

    def first_time(self) -> datetime | None:
        """Where the index's data starts (``watcher.store.first_document``): ``since:``, or its
        first document's time, asked once an hour."""
        return self._first.time()

    def _log_errors(self, queries: Sequence[Query], errors: Mapping[int, str]) -> None:
        """One line per distinct error, naming the first few queries it hit."""
        by_message: dict[str, list[str]] = {}
        for position, message in sorted(errors.items()):
            by_message.setdefault(message, []).append(queries[position].id)
        for message, ids in by_message.items():
            if len(ids) == 1:
                log.warning("query %s on %s failed: %s", ids[0], self.describe, message)
                continue
            shown = ", ".join(ids[:LOGGED_IDS]) + (", ..." if len(ids) > LOGGED_IDS else "")
            log.warning("%d queries on %s failed (%s): %s", len(ids), self.describe, shown, message)

    def close(self) -> None:
        self._backend.close()

    # ------------------------------------------------------------------ mapping

    def catalog(self, names: set[str]) -> FieldCatalog:
        """The mapped types of ``names`` (and of their ``.keyword`` sub-fields) in the index
        pattern. A field is fetched again when its entry is older than ``mapping_ttl``, or than
        ``UNMAPPED_TTL`` while it is unmapped, so a field that appears is soon usable."""
        now = self._clock()
        stale = {name for name in names if self._stale(name, now)}
        indices, fetched = self._indices
        if stale or not indices or now - fetched > self.mapping_ttl:
            wanted = stale or {self.source.time_field}
            self._fetch_mapping(wanted | {f"{name}.keyword" for name in wanted}, now)
        known = names | {f"{name}.keyword" for name in names}
        types = {name: self._fields[name][0] for name in known if name in self._fields}
        return FieldCatalog(self.source.index, self._indices[0], types)

    def _stale(self, name: str, now: float) -> bool:
        if name not in self._fields:
            return True
        types, fetched = self._fields[name]
        return now - fetched > (self.mapping_ttl if types else min(self.mapping_ttl, UNMAPPED_TTL))

    def _fetch_mapping(self, names: set[str], now: float) -> None:
        try:
            answer = self._call(
                "_field_caps", lambda: self._backend.field_caps(self.source.index, sorted(names))
            )
        except RejectedError as exc:
            if exc.status != 404:
                raise self._failed(exc) from exc
            answer = {"indices": [], "fields": {}}
        except (RequestTimeoutError, UnreachableError) as exc:
            raise self._failed(exc) from exc
        mapped = answer.get("fields") or {}
        self._bodies.clear()
        self._problems.clear()
        for name in names:
            types = frozenset(kind for kind in mapped.get(name, {}) if kind != "unmapped")
            self._fields[name] = (types, now)
        indices = answer.get("indices") or []
        self._indices = (tuple([indices] if isinstance(indices, str) else indices), now)

    # ------------------------------------------------------------------ searching

    def _answer(
        self, searches: list[FusedSearch], catalog: FieldCatalog, errors: dict[int, str]
    ) -> dict[int, list[Group]]:
        """Run fused searches round by round (next pages, isolated retries) until all are done."""
        pending: list[tuple[FusedSearch, Json | None]] = [(search, None) for search in searches]
        done: list[FusedSearch] = []
        while pending:
            bodies = [self._bodies.body(search, catalog, after) for search, after in pending]
            answers = self._msearch(bodies)
            next_round: list[tuple[FusedSearch, Json | None]] = []
            for (search, after), answer in zip(pending, answers, strict=True):
                next_round += self._take(search, after, answer, errors, done)
            pending = next_round
        answered: dict[int, list[Group]] = {}
        for search in done:
            answered.update(search.results())
        return answered

    def _take(
        self,
        search: FusedSearch,
        after: Json | None,
        answer: Json | str,
        errors: dict[int, str],
        done: list[FusedSearch],
    ) -> list[tuple[FusedSearch, Json | None]]:
        """Fold one answer into its search; return what must be asked in the next round."""
        if isinstance(answer, str):
            if len(search.members) > 1 and after is None and not isinstance(answer, RequestFailed):
                log.info(
                    "a fused search of %d queries failed (%s); retrying them one by one",
                    len(search.members),
                    answer,
                )
                return [(alone, None) for alone in search.alone()]
            errors.update({position: answer for position, _ in search.members})
            return []
        page = read_page(search, answer, self.page_size)
        search.groups.extend(page.groups)
        if page.after is None:
            done.append(search)
            return []
        if len(search.groups) >= self.max_groups:
            problem = f"more than {self.max_groups} groups: narrow the rule's group_by or where"
            errors.update({position: problem for position, _ in search.members})
            return []
        return [(search, page.after)]

    def _msearch(self, bodies: list[bytes]) -> list[Json | str]:
        """One answer per (encoded) body: the response, or the store's error message for that search."""
        answers: list[Json | str] = []
        size = self.source.msearch_max
        for start in range(0, len(bodies), size):
            chunk = bodies[start : start + size]
            answers += self._msearch_chunk(chunk)
        return answers

    def _msearch_chunk(self, chunk: list[bytes]) -> list[Json | str]:
        lines = b"".join(b"{}\n" + body + b"\n" for body in chunk)
        try:
            answer = self._call(
                "_msearch", lambda: self._backend.msearch(self.source.index, lines, MSEARCH_FILTER_PATH)
            )
        except UnreachableError as exc:
            raise self._failed(exc) from exc
        except RequestTimeoutError:
            message = RequestFailed(
                f"the store did not answer within {self.source.timeout.total_seconds():g}s"
            )
            log.warning("_msearch of %d searches on %s: %s", len(chunk), self.describe, message)
            return [message] * len(chunk)
        except RejectedError as exc:
            if exc.status in (401, 403):
                raise self._failed(exc) from exc
            return [RequestFailed(f"the store rejected the request: {exc}")] * len(chunk)
        responses = answer.get("responses") or []
        if len(responses) != len(chunk):
            return [f"the store answered {len(responses)} of {len(chunk)} searches"] * len(chunk)
        return [_item(response) for response in responses]

    # ------------------------------------------------------------------ transport

    def _call(self, what: str, request: Callable[[], Json]) -> Json:
        """Send one request with the bounded retry policy: connection errors and 429/502/503/504
        are retried ``max_retries`` times with exponential backoff and jitter; timeouts are not
        (the store is busy: asking again would double its load)."""
        attempt = 0
        while True:
            self.round_trips += 1
            try:
                return request()
            except (UnreachableError, RejectedError) as exc:
                retryable = isinstance(exc, UnreachableError) or exc.status in RETRY_STATUSES
                if not retryable or attempt >= self.source.max_retries:
                    raise
                delay = backoff(attempt)
                attempt += 1
                log.warning(
                    "%s on %s failed (%s); retry %d of %d in %.2fs",
                    what,
                    self.describe,
                    exc,
                    attempt,
                    self.source.max_retries,
                    delay,
                )
                self._sleep(delay)

    def _failed(self, exc: Exception) -> StoreError:
        if isinstance(exc, RejectedError) and exc.status in (401, 403):
            message = f"{self.describe} refused the credentials ({exc.status}): {exc}"
        elif isinstance(exc, UnreachableError):
            retries = self.source.max_retries
            message = (
                f"cannot reach {self.describe}: {exc} (after {retries} retr{'y' if retries == 1 else 'ies'})"
            )
        else:
            message = f"{self.describe} failed: {exc}"
        log.error("%s", message)
        return StoreError(message)

    # ------------------------------------------------------------------ loading (watcher ingest)

    def bulk(self, index: str, operations: list[Json]) -> Json:
        """Send one ``_bulk`` request (action and document lines); the raw answer comes back."""
        try:
            return self._call("_bulk", lambda: self._backend.bulk(index, operations))
        except (UnreachableError, RequestTimeoutError, RejectedError) as exc:
            raise self._failed(exc) from exc

    def ensure_index(self, index: str, mappings: Json) -> bool:
        """Create ``index`` with ``mappings`` unless it exists; return whether it was created."""
        try:
            return self._call("create index", lambda: self._backend.ensure_index(index, mappings)) == {
                "created": True
            }
        except (UnreachableError, RequestTimeoutError, RejectedError) as exc:
            raise self._failed(exc) from exc

    def refresh(self, index: str) -> None:
        """Make what was loaded visible to searches now."""
        try:
            self._call("_refresh", lambda: self._backend.refresh(index))
        except (UnreachableError, RequestTimeoutError, RejectedError) as exc:
            raise self._failed(exc) from exc


def _item(response: Json) -> Json | str:
    if "error" in response:
        return error_message(response["error"])
    status = int(response.get("status", 200))
    if status >= 300:
        return f"the store answered status {status}"
    return shard_failure(response) or response


def _window_problem(query: Query) -> str | None:
    for bound in (query.window.start, query.window.end):
        if bound.tzinfo is None:
            return f"window bound {bound.isoformat()} has no time zone; watcher uses UTC datetimes"
    return None


def from_source(source: SearchSource) -> SearchStore:
    """The store behind a configured ``elasticsearch`` or ``opensearch`` source (see ``store.factory``)."""
    return SearchStore(source)

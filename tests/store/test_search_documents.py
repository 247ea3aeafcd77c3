"""The document-level aggregates (``Timeline``, ``FirstSeen``, ``Latest``) give the same answers on
the embedded store (DuckDB) and on the search store (osmem-server), and the answers a reader of the
log expects: values first seen after a time with their first time, the values since a time, the
last value before a time -- per group, over one or two fields, with the limit honoured alike."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from watcher.config import SearchSource
from watcher.query import Count, Query, QueryResult, Window
from watcher.query_documents import FirstSeen, Latest, Seen, Timeline
from watcher.query_filters import In
from watcher.store.bulk import load_lines
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# (minute, tenant, user, route, status): users u1, u2 known for days; u3 appears at minute 50,
# u4 at 55 (twice); tenant b's route changes from /a to /b at minute 52.
DOCS = [
    (0, "a", "u1", "/a", 200), (10, "a", "u2", "/a", 200), (20, "b", "u1", "/a", 500),
    (30, "b", "u2", "/a", 200), (45, "a", "u1", "/a", 200), (50, "a", "u3", "/a", 200),
    (52, "b", "u2", "/b", 200), (55, "b", "u4", "/b", 503), (56.5, "b", "u4", "/b", 200),
    (58, "a", "u1", "/a", 200),
]  # fmt: skip
LINES = [
    json.dumps({"@timestamp": at(m).isoformat(), "tenant": t, "user": u, "route": r, "status": s})
    for m, t, u, r, s in DOCS
] + [json.dumps({"@timestamp": at(57).isoformat(), "tenant": "a", "route": "/a"})]  # no user

SINCE = at(48)
WHOLE = Window(at(0), at(60))
QUERIES = [
    Query("new", WHOLE, {"count": Count(), "new": FirstSeen(("user",), SINCE)}),
    Query("new-by-tenant", WHOLE, {"new": FirstSeen(("user",), SINCE)}, group_by=("tenant",)),
    Query("new-pairs", WHOLE, {"new": FirstSeen(("user", "route"), SINCE)}),
    Query("too-many", WHOLE, {"new": FirstSeen(("user",), SINCE, limit=3)}),
    Query("since", WHOLE, {"values": Timeline(("route",), SINCE)}, group_by=("tenant",)),
    Query("all", Window(at(48), at(60)), {"values": Timeline(("user",))}, In("status", (500, 503))),
    Query("before", WHOLE, {"last": Latest("route", SINCE)}, group_by=("tenant",)),
    Query("status", WHOLE, {"values": Timeline(("status",), SINCE, limit=1)}),
]


def seen(value: tuple[str, ...], first: float, last: float, count: int = 1) -> Seen:
    return Seen(value, at(first), at(last), count)


EXPECTED = {
    "new": [({}, {"count": 11, "new": (seen(("u3",), 50, 50), seen(("u4",), 55, 56.5, 2))})],
    "new-by-tenant": [
        ({"tenant": "a"}, {"new": (seen(("u3",), 50, 50),)}),
        ({"tenant": "b"}, {"new": (seen(("u4",), 55, 56.5, 2),)}),
    ],
    "new-pairs": [
        (
            {},
            {
                "new": (
                    seen(("u3", "/a"), 50, 50),
                    seen(("u2", "/b"), 52, 52),
                    seen(("u4", "/b"), 55, 56.5, 2),
                )
            },
        )
    ],
    "too-many": [({}, {"new": None})],
    "since": [
        ({"tenant": "a"}, {"values": (seen(("/a",), 50, 58, 3),)}),
        ({"tenant": "b"}, {"values": (seen(("/b",), 52, 56.5, 3),)}),
    ],
    "all": [({}, {"values": (seen(("u4",), 55, 55),)})],
    "before": [({"tenant": "a"}, {"last": "/a"}), ({"tenant": "b"}, {"last": "/a"})],
    "status": [({}, {"values": None})],
}


def _groups(result: QueryResult) -> list[tuple[dict[str, str], dict[str, object]]]:
    assert result.error is None, result.error
    groups = [(dict(g.key), dict(g.values)) for g in result.groups]
    return sorted(groups, key=lambda kv: sorted(kv[0].items()))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    store = EmbeddedStore(tmp_path_factory.mktemp("documents") / "logs.duckdb")
    assert store.ingest_lines(LINES).skipped_total == 0
    yield store
    store.close()


@pytest.fixture(scope="module", params=["ingest-mapping", "server-defaults"])
def index(request, search_server):
    name = f"watcher-docs-{request.param}-{uuid.uuid4().hex[:6]}"
    if request.param == "server-defaults":  # strings as text with a .keyword sub-field
        search_server.request("PUT", f"/{name}", {})
    source = SearchSource.model_validate({"store": "opensearch", "hosts": [search_server.url], "index": name})
    loader = SearchStore(source)
    assert load_lines(loader, LINES, name).indexed == len(LINES)
    loader.close()
    yield name
    search_server.delete_index(name)


def test_the_embedded_store_answers_what_the_log_says(embedded: EmbeddedStore) -> None:
    for query, result in zip(QUERIES, embedded.evaluate(QUERIES), strict=True):
        assert _groups(result) == EXPECTED[query.id], query.id


def test_the_search_store_answers_the_same(embedded, index, make_store, client) -> None:
    search = make_store(client, index)
    left, right = embedded.evaluate(QUERIES), search.evaluate(QUERIES)
    for query, expected, got in zip(QUERIES, left, right, strict=True):
        assert _groups(got) == _groups(expected), query.id

"""Evidence in alerts, on the real embedded store and on osmem-server: a firing 5xx-ratio rule's
incident keeps a few of its group's 5xx documents (the ``of`` filter's, not any request), newest
first, redacted and cut before they are stored, across a restart; ``evidence: false`` keeps none;
and evidence rides in the evaluation's own request (same count of round trips)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StateAt
from tests.store.conftest import SearchServer, StoreFactory
from watcher.config import Route
from watcher.engine import Engine
from watcher.incidents.model import Event, State
from watcher.query import Query, QueryResult, Samples
from watcher.rules.evidence import DEFAULT_REDACT, ELLIPSIS, MAX_FIELDS, MAX_VALUE, REDACTED, cleaned
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore
from watcher.tick_report import TickReport

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROUTE = Route.model_validate({"receiver": "console"})
LONG = "x" * (MAX_VALUE + 200)


def documents() -> list[dict[str, Any]]:
    """One minute of requests: api fails 6 of 10 (each 5xx with a trace id, a bearer token and a
    long error), web 1 of 10."""
    docs = []
    for i in range(10):
        at = (T0 - timedelta(seconds=60 - 5 * i)).isoformat()
        api_status = 503 if i % 5 < 3 else 200
        secret = {"authorization": "Bearer s3cr3t", "error": {"message": LONG}}
        api = {"service": "api", "status": api_status, "route": f"/predict/{i}", "trace_id": f"t{i}"}
        docs.append({"@timestamp": at, **api, **secret})
        docs.append({"@timestamp": at, "service": "web", "status": 500 if i == 9 else 200, "route": "/"})
    return docs


def rule(**fields: Any) -> Rule:
    spec: dict[str, Any] = {
        "name": "5xx-ratio",
        "source": "logs",
        "every": "1m",
        "window": "1m",
        "delay": "0s",
        "group_by": ["service"],
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
        "threshold": {"above": 0.3},
    }
    return Rule.model_validate(spec | fields)


@pytest.fixture(params=["embedded", "osmem"])
def logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    """The same documents in a real DuckDB file, or in an index of osmem-server."""
    if request.param == "embedded":
        store = EmbeddedStore(tmp_path / "logs.duckdb")
        store.ingest_lines(json.dumps(doc) for doc in documents())
        yield store
        store.close()
        return
    server: SearchServer = request.getfixturevalue("search_server")
    make_store: StoreFactory = request.getfixturevalue("make_store")
    index = f"evidence-{uuid.uuid4().hex[:8]}"
    properties = {"@timestamp": {"type": "date"}, "service": {"type": "keyword"},
                  "status": {"type": "integer"}, "route": {"type": "keyword"}}  # fmt: skip
    server.create_index(index, properties, documents())
    yield make_store("opensearch", index)
    server.delete_index(index)


def fired(logs: LogStore, state_at: StateAt, shown: bool = True, **fields: Any) -> TickReport:
    """One tick of the rule (with ``fields``) at T0, the engine fetching evidence or not."""
    with state_at.open() as state:
        return Engine([rule(**fields)], {"logs": logs}, state, ROUTE, evidence=shown).tick(T0)


def test_a_firing_ratio_rule_keeps_only_its_groups_5xx_documents(logs: LogStore, state_at: StateAt) -> None:
    fired(logs, state_at)
    with state_at.open() as state:  # the state reopened: a restart
        (incident,) = state.incidents(states=(State.FIRING,))
    assert incident.group == {"service": "api"}
    assert len(incident.evidence) == 3
    assert all(doc["service"] == "api" and doc["status"] == 503 for doc in incident.evidence)
    assert [doc["trace_id"] for doc in incident.evidence] == ["t7", "t6", "t5"]  # newest first
    first = incident.evidence[0]
    assert first["authorization"] == REDACTED
    assert first["error.message"] == "x" * (MAX_VALUE - 1) + ELLIPSIS


def test_size_fields_and_sort_choose_the_documents(logs: LogStore, state_at: StateAt) -> None:
    fired(
        logs, state_at, evidence={"size": 2, "fields": ["trace_id", "route"], "sort": {"@timestamp": "asc"}}
    )
    with state_at.open() as state:
        (incident,) = state.incidents(states=(State.FIRING,))
    assert [dict(doc) for doc in incident.evidence] == [
        {"trace_id": "t0", "route": "/predict/0"},
        {"trace_id": "t1", "route": "/predict/1"},
    ]


def test_evidence_false_keeps_none(logs: LogStore, state_at: StateAt) -> None:
    fired(logs, state_at, evidence=False)
    with state_at.open() as state:
        (incident,) = state.incidents(states=(State.FIRING,))
    assert incident.evidence == ()


def test_evidence_costs_no_round_trip(logs: LogStore, state_at: StateAt) -> None:
    without = fired(logs, state_at, shown=False, name="5xx-ratio-bare")  # also reads the mapping
    before = getattr(logs, "round_trips", None)
    with_evidence = fired(logs, state_at)
    assert with_evidence.round_trips == without.round_trips == {"logs": 1}
    if before is not None:  # the search store's own count of HTTP requests: one _msearch
        assert getattr(logs, "round_trips", 0) - before == 1


def test_a_deny_list_rule_shows_the_offending_documents(logs: LogStore, state_at: StateAt) -> None:
    """A document-level rule's evidence comes from its own filter: the routes it denies."""
    fired(logs, state_at, name="denied-route", signal={"count": {}}, threshold=None,
          values={"field": "route", "deny": ["/predict/2", "/predict/8"]})  # fmt: skip
    with state_at.open() as state:
        (incident,) = state.incidents(states=(State.FIRING,))
    assert incident.group == {"service": "api"}
    assert [doc["route"] for doc in incident.evidence] == ["/predict/8", "/predict/2"]


def test_a_percentile_rule_shows_its_largest_values(logs: LogStore, state_at: StateAt) -> None:
    """The slowest requests of a p99 latency alert, not merely the newest."""
    fired(logs, state_at, name="p99", group_by=[], where={"service": "api"},
          signal={"percentile": {"field": "status", "q": 99}}, threshold={"above": 400})  # fmt: skip
    with state_at.open() as state:
        (incident,) = state.incidents(states=(State.FIRING,))
    assert [doc["status"] for doc in incident.evidence] == [503, 503, 503]  # the newest two are 200s


def test_a_wide_document_keeps_its_first_fields() -> None:
    wide = {f"f{i:03}": i for i in range(MAX_FIELDS + 10)}
    (kept,) = cleaned([wide], DEFAULT_REDACT)
    assert list(kept) == [f"f{i:03}" for i in range(MAX_FIELDS)]


def test_each_kind_of_value_is_kept_told_as_text_or_redacted_under_its_own_redact_list() -> None:
    class Label(str):
        pass

    doc = {"status": 503, "ok": False, "gone": None, "ms": 8.5, "pair": (1, 2), "tags": ["a", 1],
           "ctx": {"k": "v"}, "auth_header": "Bearer abc.def", "note": Label("Basic dXNlcg== sent"),
           "session": "s-1"}  # fmt: skip
    (kept,) = cleaned([doc], DEFAULT_REDACT)
    assert kept == {"status": 503, "ok": False, "gone": None, "ms": 8.5, "pair": (1, 2),
                    "tags": "['a', 1]", "ctx": "{'k': 'v'}", "auth_header": f"Bearer {REDACTED}",
                    "note": f"Basic {REDACTED} sent", "session": "s-1"}  # fmt: skip
    assert cleaned([doc], ("session",))[0]["session"] == REDACTED  # another list decides afresh
    assert cleaned([doc], DEFAULT_REDACT)[0]["session"] == "s-1"


class SamplesCounted:
    """A real store, counting the evidence queries (``Samples``) it is asked and, on the search
    store, the HTTP requests of each tick."""

    def __init__(self, store: LogStore) -> None:
        self.store, self.asked = store, 0
        self.requests: list[int] = []

    def __getattr__(self, name: str) -> Any:  # what the partials ask of the store (one_request, ...)
        return getattr(self.store, name)

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        self.asked += sum(isinstance(a, Samples) for q in queries for a in q.aggregates.values())
        return self.store.evaluate(queries)


def sliding(logs: LogStore, state_at: StateAt, above: float) -> tuple[SamplesCounted, list[TickReport]]:
    """A 5-minute 5xx ratio every minute (answered from per-bucket partials) ticked from before
    the documents to a minute after T0, on the real store."""
    counted = SamplesCounted(logs)
    spec = rule(window="5m", threshold={"above": above})
    at_once = Route.model_validate({"receiver": "console", "group_wait": "0s"})
    reports = []
    with state_at.open() as state:
        engine = Engine([spec], {"logs": counted}, state, at_once)
        for minutes in (3, 2, 1, 0, -1):
            before = getattr(logs, "round_trips", 0)
            reports.append(engine.tick(T0 - timedelta(minutes=minutes)))
            counted.requests.append(getattr(logs, "round_trips", 0) - before)
    return counted, reports


def test_with_partials_the_first_firing_notification_has_evidence(logs: LogStore, state_at: StateAt) -> None:
    """Evidence is asked only on the tick a group alerts, and the FIRING notification sent at that
    tick already shows the group's 5xx documents: in that tick's one store call; on a search store,
    in a second request after the newest minute's (the quiet ticks send one request, no documents)."""
    counted, reports = sliding(logs, state_at, above=0.3)
    *quiet, firing, lasting = reports
    assert [r.transitions for r in quiet] == [[], [], []]
    assert counted.asked == 2  # the alerting ticks', not one per tick
    assert firing.round_trips == lasting.round_trips == {"logs": 1}
    if isinstance(logs, SearchStore):  # the first tick also read the mapping and the first document
        # a lasting alert's evidence is asked with the newest minute, in the tick's one request
        assert counted.requests[1:] == [1, 1, 2, 1]
    (notification,) = firing.notifications
    assert notification.event is Event.FIRING
    (incident,) = notification.incidents
    assert incident.group == {"service": "api"}
    assert [doc["status"] for doc in incident.evidence] == [503, 503, 503]
    assert [doc["trace_id"] for doc in incident.evidence] == ["t7", "t6", "t5"]


def test_with_partials_no_alerting_group_asks_no_evidence(logs: LogStore, state_at: StateAt) -> None:
    """api's 60 % and web's 10 % 5xx both stay under 70 %: the windows are summed from buckets and
    no tick reads documents for evidence."""
    counted, reports = sliding(logs, state_at, above=0.7)
    assert all(not report.transitions for report in reports)
    assert counted.asked == 0
    if isinstance(logs, SearchStore):
        assert counted.requests[1:] == [1, 1, 1, 1]

"""``watcher check --online``: each rule's index pattern exists on the live store and the fields it
uses are mapped with types that can answer it; the mapping rules in ``FieldCatalog``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from watcher.config import SearchSource
from watcher.rules.models import Rule
from watcher.store.mapping_check import FieldCatalog, FieldMappingError, Use, check_online
from watcher.store.search import SearchStore

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PROPERTIES = {
    "@timestamp": {"type": "date"},
    "latency_ms": {"type": "double"},
    "status": {"type": "text"},  # analysed, no keyword sub-field: a classic mapping mistake
    "endpoint": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    "model_version": {"type": "keyword"},
}


@pytest.fixture(scope="module")
def index(search_server):
    name = f"watcher-map-{uuid.uuid4().hex[:8]}"
    search_server.create_index(name, PROPERTIES, [{"@timestamp": "2026-01-05T08:00:00Z", "latency_ms": 1.0}])
    yield name
    search_server.delete_index(name)


def rule(name: str, **spec: object) -> Rule:
    return Rule.model_validate({"name": name, "source": "logs", "threshold": {"above": 1}, **spec})


def source(url: str, client: str, index: str) -> SearchSource:
    return SearchSource.model_validate({"store": client, "hosts": [url], "index": index, "max_retries": 0})


def test_online_check_reports_each_unusable_field(search_server, options_for, client, index):
    rules = [
        rule(
            "good", signal={"percentile": {"field": "latency_ms", "q": 99}}, where={"endpoint": "/v1/predict"}
        ),
        rule("text-status", signal={"ratio": {"of": {"status": {"gte": 500}}}}),
        rule("grouped-by-status", group_by=["status"]),
        rule("typo", signal={"stat": {"field": "latency", "fn": "avg"}}, group_by=["model_version"]),
        rule("keyword-latency", signal={"percentile": {"field": "model_version", "q": 50}}),
        rule("other-source", source="elsewhere", signal={"stat": {"field": "nope", "fn": "max"}}),
    ]
    sources = {"logs": source(search_server.url, client, index)}
    problems = check_online(rules, sources, AT, lambda s: SearchStore(s, client_options=options_for(client)))
    where = f"in index {index!r}"
    assert [str(p) for p in problems] == [
        f"rule 'text-status' (source 'logs'): field 'status' is mapped as text {where}, not as a number",
        f"rule 'grouped-by-status' (source 'logs'): field 'status' is analysed text {where} with no "
        "keyword sub-field: it cannot be matched exactly, grouped or counted",
        f"rule 'typo' (source 'logs'): field 'latency' is not mapped {where}",
        f"rule 'keyword-latency' (source 'logs'): field 'model_version' is mapped as keyword {where}, "
        "not as a number",
    ]


def test_online_check_of_a_missing_index_and_an_unreachable_store(search_server, options_for, client):
    rules = [rule("a"), rule("b", source="down")]
    sources = {
        "logs": source(search_server.url, client, "watcher-missing-*"),
        "down": source("http://127.0.0.1:9", client, "x"),
    }
    problems = check_online(rules, sources, AT, lambda s: SearchStore(s, client_options=options_for(client)))
    assert [str(p) for p in problems] == [
        f"source 'down': cannot reach {client} at http://127.0.0.1:9 (index x): "
        "connection refused (after 0 retries)",
        "source 'logs': index pattern 'watcher-missing-*' matches no index",
    ]


CATALOG = FieldCatalog(
    "logs-*",
    ("logs-1", "logs-2"),
    {
        "status": frozenset({"long", "integer"}),
        "mixed": frozenset({"long", "keyword"}),
        "message": frozenset({"text"}),
        "message.keyword": frozenset({"keyword"}),
        "features": frozenset({"object"}),
        "at": frozenset({"date"}),
    },
)


@pytest.mark.parametrize(
    ("name", "use", "field"),
    [
        ("status", Use.NUMERIC, "status"),
        ("status", Use.EXACT, "status"),
        ("message", Use.EXACT, "message.keyword"),
        ("message", Use.PRESENCE, "message"),
        ("at", Use.NUMERIC, "at"),
    ],
)
def test_resolve(name, use, field):
    assert CATALOG.resolve(name, use) == field


@pytest.mark.parametrize(
    ("name", "use", "message"),
    [
        ("mixed", Use.EXACT, "field 'mixed' has conflicting mappings across 'logs-*': keyword, long"),
        ("features", Use.PRESENCE, "field 'features' is an object in index 'logs-*', not a value"),
        ("message", Use.NUMERIC, "field 'message' is mapped as text in index 'logs-*', not as a number"),
        ("nothing", Use.PRESENCE, "field 'nothing' is not mapped in index 'logs-*'"),
    ],
)
def test_resolve_errors(name, use, message):
    with pytest.raises(FieldMappingError) as failure:
        CATALOG.resolve(name, use)
    assert str(failure.value) == message

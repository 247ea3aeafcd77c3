"""The same rules over the same generated log give the same values on the embedded store and on
the search store: counts, ratios, histograms, terms, cardinality and stats exactly (sums and
averages to 1e-9 relative), percentiles within ``PERCENTILE_TOLERANCE`` -- the search server
estimates them (t-digest on Elasticsearch / OpenSearch), DuckDB computes them exactly.

The log is loaded twice on the search side: into an index ``watcher ingest`` creates (strings as
keywords, fractions as doubles) and into one mapped by the server's defaults (strings as analysed
text with a ``.keyword`` sub-field, fractions as 32-bit floats), so both field resolutions are
covered."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from watcher.demo import DEMO_START, generate
from watcher.detect import DETECTORS
from watcher.query import (
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    QueryResult,
    Samples,
    Stats,
    Terms,
    Values,
    Window,
)
from watcher.query_filters import And, Eq, Exists, In, Not, Or, Range
from watcher.rules.models import Rule
from watcher.store.bulk import load_lines
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore

LENGTH = timedelta(minutes=20)
PERCENTILE_TOLERANCE = 0.05  # relative, on windows of ~1,500 documents
FLOAT_TOLERANCE = 1e-9  # sums and averages: the stores add in different orders
FLOAT32_TOLERANCE = 1e-6  # the server's default mapping stores fractions as 32-bit floats
TICKS = [DEMO_START + timedelta(minutes=m, seconds=30) for m in (5, 10, 15, 20)]

RULES = [
    {"name": "5xx", "where": {"service": "prediction-api"}, "group_by": ["model_version"],
     "signal": {"ratio": {"of": {"status": {"gte": 500}}}}, "threshold": {"above": 0.05}},
    {"name": "p99", "where": {"service": "prediction-api", "endpoint": "/v1/predict"},
     "signal": {"percentile": {"field": "latency_ms", "q": 99}}, "threshold": {"above": 800}},
    {"name": "p50-by-version", "group_by": ["model_version"],
     "signal": {"percentile": {"field": "latency_ms", "q": 50}}, "threshold": {"above": 800}},
    {"name": "flat", "where": {"service": "prediction-api"}, "flatline": {"below": 300}},
    {"name": "429", "signal": {"ratio": {"of": {"status": 429}}}, "threshold": {"above": 0.1}},
    {"name": "avg-latency", "group_by": ["endpoint"],
     "signal": {"stat": {"field": "latency_ms", "fn": "avg"}}, "threshold": {"above": 300}},
    {"name": "clients", "signal": {"cardinality": {"field": "client_id"}}, "threshold": {"above": 100}},
    {"name": "not-v3", "where": {"model_version": {"ne": "v3"}}, "group_by": ["status"],
     "threshold": {"above": 9}},
]  # fmt: skip

WINDOW = Window(DEMO_START, DEMO_START + timedelta(minutes=10))
QUERIES = [
    Query(
        "every-aggregate",
        WINDOW,
        {
            "count": Count(),
            "errors": CountWhere(Or((Range("status", gte=500), Eq("status", 429)))),
            "explain": CountWhere(In("endpoint", ("/v1/explain",))),
            "tenure": CountWhere(Exists("features.tenure_months")),
            "not-us": CountWhere(Not(Eq("features.country", "US"))),
            "p": Percentiles("latency_ms", (50.0, 90.0, 99.0)),
            "latency": Stats("latency_ms"),
            "age": Stats("features.age"),
            "income-bins": Histogram("features.income", (30000.5, 45000.5, 60000.5, 90000.5)),
            "age-bins": Histogram("features.age", (25.0, 40.0, 60.0)),
            "countries": Terms("features.country", 10),
            "plans": Terms("features.plan", 2),
            "no-tenure": Missing("features.tenure_months"),
            "clients": Cardinality("client_id"),
        },
    ),
    Query(
        "by-two",
        WINDOW,
        {"count": Count(), "slow": CountWhere(Range("latency_ms", gt=150.05))},
        group_by=("model_version", "features.plan"),
    ),
]


@pytest.fixture(scope="module")
def log_lines() -> list[str]:
    return [json.dumps(doc) for doc in generate(DEMO_START, LENGTH, seed=11)]


@pytest.fixture(scope="module")
def embedded(log_lines, tmp_path_factory):
    store = EmbeddedStore(tmp_path_factory.mktemp("equivalence") / "logs.duckdb", time_field="@timestamp")
    report = store.ingest_lines(log_lines)
    assert report.skipped_total == 0
    yield store
    store.close()


@pytest.fixture(scope="module", params=["ingest-mapping", "server-defaults"])
def loaded_index(request, search_server, log_lines):
    index = f"watcher-eq-{request.param}-{uuid.uuid4().hex[:6]}"
    if request.param == "server-defaults":
        search_server.request("PUT", f"/{index}", {})  # load_lines keeps an existing index as it is
    loader = SearchStore(_source(search_server, index))
    report = load_lines(loader, log_lines, index)
    loader.close()
    assert report.indexed == len(log_lines)
    yield index, request.param
    search_server.delete_index(index)


def _source(search_server, index: str):
    from watcher.config import SearchSource

    auth = (
        {"username": search_server.username, "password": search_server.password}
        if search_server.username
        else {}
    )
    return SearchSource.model_validate(
        {"store": "opensearch", "hosts": [search_server.url], "index": index, **auth}
    )


def test_rules_give_the_same_values_on_both_stores(embedded, loaded_index, make_store, client):
    index, mapping = loaded_index
    search = make_store(client, index)
    rules = [
        Rule.model_validate({"source": "logs", "window": "5m", "delay": "30s", **spec}) for spec in RULES
    ]
    queries = [
        query for at in TICKS for rule in rules for query in DETECTORS[rule.detector].queries(rule, at)
    ]
    queries = [
        Query(f"{i}:{q.id}", q.window, q.aggregates, q.where, q.group_by) for i, q in enumerate(queries)
    ]
    _assert_equivalent(queries, embedded.evaluate(queries), search.evaluate(queries), mapping)


def test_every_aggregate_gives_the_same_values_on_both_stores(embedded, loaded_index, make_store, client):
    index, mapping = loaded_index
    search = make_store(client, index)
    _assert_equivalent(QUERIES, embedded.evaluate(QUERIES), search.evaluate(QUERIES), mapping)


def _assert_equivalent(
    queries: list[Query], left: list[QueryResult], right: list[QueryResult], mapping: str
) -> None:
    float_tolerance = FLOAT32_TOLERANCE if mapping == "server-defaults" else FLOAT_TOLERANCE
    for query, expected, got in zip(queries, left, right, strict=True):
        assert expected.error is None, expected.error
        assert got.error is None, f"{query.id}: {got.error}"
        assert len(expected.groups) > 0
        expected_groups = {tuple(sorted(g.key.items())): g.values for g in expected.groups}
        got_groups = {tuple(sorted(g.key.items())): g.values for g in got.groups}
        assert got_groups.keys() == expected_groups.keys(), query.id
        for key, values in expected_groups.items():
            for name, aggregate in query.aggregates.items():
                where = f"{query.id} {dict(key)} {name}"
                _assert_value(aggregate, values[name], got_groups[key][name], float_tolerance, where)


def _assert_value(aggregate, expected, got, float_tolerance: float, where: str) -> None:
    if isinstance(aggregate, Percentiles):
        assert got.keys() == expected.keys(), where
        for q, value in expected.items():
            assert got[q] == pytest.approx(value, rel=PERCENTILE_TOLERANCE), f"{where} p{q}"
    elif isinstance(aggregate, Stats):
        assert got["count"] == expected["count"], where
        assert {k: got[k] for k in ("min", "max")} == pytest.approx(
            {k: expected[k] for k in ("min", "max")}, rel=float_tolerance
        ), where
        assert {k: got[k] for k in ("sum", "avg")} == pytest.approx(
            {k: expected[k] for k in ("sum", "avg")}, rel=float_tolerance
        ), where
    else:
        assert got == expected, where


UNSEEN = And((Exists("features.country"), Not(In("features.country", ("US", "FR")))))
BUCKETED = [
    Query(
        f"bucketed-{i}",
        WINDOW,
        {
            "count": Count(),
            "5xx": CountWhere(Range("status", gte=500)),
            "slow": CountWhere(Range("latency_ms", gt=150.05)),
            "fast-or-slow": CountWhere(Or((Range("latency_ms", lt=40.0), Range("latency_ms", gt=400.0)))),
            "at-most-30": CountWhere(Range("features.age", lte=30.0)),
            "unseen": CountWhere(
                And((Exists("features.country"), Not(In("features.country", ("US", "FR")))))
            ),
            "not-us": CountWhere(Not(Eq("features.country", "US"))),
            "tenure": CountWhere(Exists("features.tenure_months")),
            "429": CountWhere(Eq("status", 429)),
            "latency": Stats("latency_ms"),
            "age-bins": Histogram("features.age", (25.0, 40.0, 60.0)),
            "no-tenure": Missing("features.tenure_months"),
            "countries": Values("features.country"),
        },
        where,
        group_by,
        buckets=timedelta(minutes=1),
    )
    for i, (where, group_by) in enumerate(
        [
            (Eq("service", "prediction-api"), ("model_version",)),
            (And((Eq("service", "prediction-api"), In("endpoint", ("/v1/predict", "/v1/batch")))), ()),
            (And((In("model_version", ("v1", "v2")), Range("latency_ms", gte=60.0))), ("endpoint",)),
            (Not(Eq("model_version", "v3")), ()),
        ]
    )
]


def test_bucketed_queries_give_the_same_values_on_both_stores(embedded, loaded_index, make_store, client):
    """What per-bucket partials ask (one interval per bucket): ``where`` equalities read as keys and
    single-field counts read from per-document cells give the embedded store's answers."""
    index, mapping = loaded_index
    search = make_store(client, index)
    _assert_equivalent(BUCKETED, embedded.evaluate(BUCKETED), search.evaluate(BUCKETED), mapping)


FIELDS = ("@timestamp", "service", "model_version", "status")
EVIDENCE = [  # an alert's evidence as per-bucket partials send it: a search of Samples alone
    Query("evidence-by-version", WINDOW, {"e": Samples(size=3, fields=FIELDS)},
          Eq("service", "prediction-api"), ("model_version",)),
    Query("evidence-5xx", WINDOW, {"e": Samples(Range("status", gte=500), 3, FIELDS)},
          And((Eq("service", "prediction-api"), Eq("endpoint", "/v1/predict")))),
    Query("evidence-in", WINDOW, {"e": Samples(size=2, fields=FIELDS)}, In("model_version", ("v1", "v3"))),
    Query("evidence-none", Window.ending_at(DEMO_START + timedelta(hours=2), timedelta(hours=1)),
          {"e": Samples(size=2, fields=FIELDS)}, Eq("service", "prediction-api")),
]  # fmt: skip


def test_evidence_alone_gives_the_same_documents_on_both_stores(embedded, loaded_index, make_store, client):
    """The rule's ``where`` equalities read as keys (no whole-index filter) keep the newest
    documents of each group; an empty window still answers its one group, with no document."""
    index, _ = loaded_index
    search = make_store(client, index)
    for query, expected, got in zip(
        EVIDENCE, embedded.evaluate(EVIDENCE), search.evaluate(EVIDENCE), strict=True
    ):
        assert got.error is None, got.error
        assert {tuple(g.key.items()): g.values["e"] for g in got.groups} == {
            tuple(g.key.items()): g.values["e"] for g in expected.groups
        }, query.id
    assert [len(g.values["e"].documents) for g in got.groups] == [0]

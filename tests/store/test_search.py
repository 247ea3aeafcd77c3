"""The search store answers every aggregate of ``watcher.query`` with the values a person would
compute by hand from the documents, through both clients, against a real server."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from watcher.query import (
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Samples,
    Stats,
    Terms,
    Window,
)
from watcher.query_filters import MATCH_ALL, Eq, Exists, In, Not, Or, Range

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=5))

PROPERTIES = {
    "@timestamp": {"type": "date"},
    "service": {"type": "keyword"},
    "model_version": {"type": "keyword"},
    "status": {"type": "integer"},
    "latency_ms": {"type": "double"},
    "client_id": {"type": "keyword"},
    "endpoint": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    "message": {"type": "text"},
}


def _doc(seconds: float, **fields: object) -> dict[str, object]:
    when = T0 + timedelta(seconds=seconds)
    return {"@timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"), **fields}


# Nine documents in the window (eight of service "api"), two just outside it.
DOCS = [
    _doc(
        0,
        service="api",
        model_version="v2",
        status=200,
        latency_ms=10,
        client_id="c1",
        endpoint="/v1/predict",
    ),
    _doc(
        30,
        service="api",
        model_version="v2",
        status=200,
        latency_ms=20,
        client_id="c2",
        endpoint="/v1/predict",
    ),
    _doc(
        60,
        service="api",
        model_version="v2",
        status=500,
        latency_ms=30,
        client_id="c1",
        endpoint="/v1/explain",
    ),
    _doc(
        90,
        service="api",
        model_version="v3",
        status=200,
        latency_ms=40,
        client_id="c3",
        endpoint="/v1/predict",
    ),
    _doc(
        120,
        service="api",
        model_version="v3",
        status=503,
        latency_ms=50,
        client_id="c3",
        endpoint="/v1/predict",
    ),
    _doc(
        150,
        service="api",
        model_version="v3",
        status=429,
        latency_ms=60,
        client_id="c4",
        endpoint="/v1/predict",
    ),
    _doc(
        180,
        service="api",
        status=200,
        latency_ms=70,
        client_id="c1",
        endpoint="/v1/predict",
        message="no model",
    ),
    _doc(240, service="web", model_version="v2", status=404, latency_ms=80, endpoint="/index.html"),
    _doc(299.999, service="api", model_version="v3", status=200, client_id="c2", endpoint="/v1/predict"),
    _doc(
        300, service="api", model_version="v2", status=500, latency_ms=999, client_id="c9"
    ),  # at the end: out
    _doc(
        -0.001, service="api", model_version="v2", status=500, latency_ms=999, client_id="c9"
    ),  # before: out
]
API = Eq("service", "api")


@pytest.fixture(scope="module")
def index(search_server):
    name = f"watcher-agg-{uuid.uuid4().hex[:8]}"
    search_server.create_index(name, PROPERTIES, DOCS)
    yield name
    search_server.delete_index(name)


def ask(store, *queries):
    results = store.evaluate(list(queries))
    assert [r.query_id for r in results] == [q.id for q in queries]
    return results


def one(store, aggregates, where=API, group_by=(), window=WINDOW):
    (result,) = ask(store, Query("q", window, aggregates, where, group_by))
    assert result.error is None, result.error
    return result


def values(store, aggregates, where=API):
    result = one(store, aggregates, where)
    assert len(result.groups) == 1
    assert result.groups[0].key == {}
    return dict(result.groups[0].values)


def test_counts_match_hand_computed_values(make_store, client, index):
    store = make_store(client, index)
    got = values(
        store,
        {
            "count": Count(),
            "errors": CountWhere(Range("status", gte=500)),
            "not_ok": CountWhere(Not(Eq("status", 200))),
            "limited_or_unavailable": CountWhere(Or((Eq("status", 429), Eq("status", 503)))),
            "in": CountWhere(In("client_id", ("c1", "c3"))),
            "has_model": CountWhere(Exists("model_version")),
            "open_range": CountWhere(Range("latency_ms", gt=20, lte=50)),
            "no_model": Missing("model_version"),
            "no_latency": Missing("latency_ms"),
            "no_message": Missing("message"),  # analysed text: counted with a filter on absence
            "clients": Cardinality("client_id"),
        },
    )
    assert got == {
        "count": 8,
        "errors": 2,
        "not_ok": 3,
        "limited_or_unavailable": 2,
        "in": 5,
        "has_model": 7,
        "open_range": 3,
        "no_model": 1,
        "no_latency": 1,
        "no_message": 7,
        "clients": 4,
    }


def test_window_is_half_open_in_utc(make_store, client, index):
    store = make_store(client, index)
    assert values(store, {"n": Count()}, where=Eq("client_id", "c9"))["n"] == 0
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")  # the same instants written in another zone select the same docs
    shifted = Window(WINDOW.start.astimezone(paris), WINDOW.end.astimezone(paris))
    assert one(store, {"n": Count()}, window=shifted).groups[0].values["n"] == 8
    just_last = Window(T0 + timedelta(seconds=299.999), T0 + timedelta(seconds=299.9995))
    assert one(store, {"n": Count()}, window=just_last).groups[0].values["n"] == 1


def test_stats_histogram_and_terms(make_store, client, index):
    store = make_store(client, index)
    got = values(
        store,
        {
            "stats": Stats("latency_ms"),
            "bins": Histogram("latency_ms", (20.0, 50.0)),
            "statuses": Terms("status", size=10),
            "top": Terms("status", size=1),
        },
    )
    assert got["stats"] == {"count": 7, "sum": 280.0, "min": 10.0, "max": 70.0, "avg": 40.0}
    assert got["bins"] == [
        1,
        3,
        3,
    ]  # (-inf, 20), [20, 50), [50, +inf); the doc without latency is not counted
    assert got["statuses"] == {"200": 5, "500": 1, "503": 1, "429": 1}
    assert got["top"] == {"200": 5}


def test_percentiles_are_keyed_by_q(make_store, client, index):
    store = make_store(client, index)
    got = values(store, {"p": Percentiles("latency_ms", (0.0, 50.0, 100.0))})["p"]
    assert list(got) == [0.0, 50.0, 100.0]
    assert got[0.0] == 10.0
    assert got[100.0] == 70.0
    assert got[50.0] == pytest.approx(40.0, abs=10.0)  # t-digest on 7 values: within one neighbour


def test_percentiles_on_many_values(search_server, make_store, client, fresh_index):
    name = fresh_index("watcher-pct")
    docs = [_doc(i * 0.1, latency_ms=float(i)) for i in range(1001)]  # 0..1000 ms
    search_server.create_index(name, {"@timestamp": {"type": "date"}, "latency_ms": {"type": "double"}}, docs)
    store = make_store(client, name)
    window = Window(T0, T0 + timedelta(minutes=5))
    got = one(store, {"p": Percentiles("latency_ms", (50.0, 90.0, 99.0))}, where=MATCH_ALL, window=window)
    p = got.groups[0].values["p"]
    assert p[50.0] == pytest.approx(500, rel=0.01)
    assert p[90.0] == pytest.approx(900, rel=0.01)
    assert p[99.0] == pytest.approx(990, rel=0.01)


def test_empty_window_without_group_by_is_one_group_of_zeros(make_store, client, index):
    store = make_store(client, index)
    empty = Window(T0 - timedelta(days=1), T0 - timedelta(hours=23))
    aggregates = {
        "count": Count(),
        "errors": CountWhere(Range("status", gte=500)),
        "p": Percentiles("latency_ms", (99.0,)),
        "stats": Stats("latency_ms"),
        "bins": Histogram("latency_ms", (20.0,)),
        "terms": Terms("status"),
        "missing": Missing("latency_ms"),
        "clients": Cardinality("client_id"),
    }
    result = one(store, aggregates, window=empty)
    assert [g.key for g in result.groups] == [{}]
    assert result.groups[0].values == {
        "count": 0,
        "errors": 0,
        "p": {99.0: None},
        "stats": {"avg": None, "min": None, "max": None, "sum": None, "count": 0},
        "bins": [0, 0],
        "terms": {},
        "missing": 0,
        "clients": 0,
    }
    grouped = one(store, {"count": Count()}, group_by=("model_version",), window=empty)
    assert grouped.groups == []


def test_group_by_with_missing_values_as_empty_string(make_store, client, index):
    store = make_store(client, index)
    result = one(
        store,
        {"count": Count(), "errors": CountWhere(Range("status", gte=500)), "p": Stats("latency_ms")},
        group_by=("model_version",),
    )
    by_key = {g.key["model_version"]: g.values for g in result.groups}
    assert {k: v["count"] for k, v in by_key.items()} == {"v2": 3, "v3": 4, "": 1}
    assert {k: v["errors"] for k, v in by_key.items()} == {"v2": 1, "v3": 1, "": 0}
    assert by_key["v3"]["p"] == {"count": 3, "sum": 150.0, "min": 40.0, "max": 60.0, "avg": 50.0}


def test_group_by_two_fields_and_numbers(make_store, client, index):
    store = make_store(client, index)
    result = one(store, {"n": Count()}, group_by=("model_version", "status"))
    got = {(g.key["model_version"], g.key["status"]): g.values["n"] for g in result.groups}
    assert got == {
        ("v2", "200"): 2,
        ("v2", "500"): 1,
        ("v3", "200"): 2,
        ("v3", "503"): 1,
        ("v3", "429"): 1,
        ("", "200"): 1,
    }


def test_composite_paging_collects_every_group(make_store, client, index):
    store = make_store(client, index, page_size=2)
    before = store.round_trips
    result = one(
        store, {"n": Count(), "slow": CountWhere(Range("latency_ms", gte=30))}, group_by=("client_id",)
    )
    got = {g.key["client_id"]: (g.values["n"], g.values["slow"]) for g in result.groups}
    assert got == {"c1": (3, 2), "c2": (2, 0), "c3": (2, 2), "c4": (1, 1)}
    # 4 groups on pages of 2 (the last page is empty): field caps + 3 _msearch rounds
    assert store.round_trips - before == 4


def test_max_groups_is_an_error_not_a_truncated_answer(make_store, client, index):
    store = make_store(client, index, page_size=1, max_groups=2)
    (result,) = ask(store, Query("many", WINDOW, {"n": Count()}, API, ("client_id",)))
    assert result.error == "more than 2 groups: narrow the rule's group_by or where"


def test_text_field_is_matched_and_grouped_through_its_keyword_subfield(make_store, client, index):
    store = make_store(client, index)
    got = values(
        store, {"predict": CountWhere(Eq("endpoint", "/v1/predict")), "endpoints": Terms("endpoint")}
    )
    assert got["predict"] == 7  # exact value, not the analysed tokens "v1" / "predict"
    assert got["endpoints"] == {"/v1/predict": 7, "/v1/explain": 1}
    grouped = one(store, {"n": Count()}, group_by=("endpoint",))
    assert {g.key["endpoint"]: g.values["n"] for g in grouped.groups} == {"/v1/predict": 7, "/v1/explain": 1}


def test_fused_queries_share_one_search_and_keep_their_own_names(make_store, client, index):
    store = make_store(client, index)
    queries = [
        Query(
            f"r{i}",
            WINDOW,
            {"count": Count(), "value": CountWhere(Range("status", gte=400 + 100 * (i % 2)))},
            API,
        )
        for i in range(6)
    ]
    before = store.round_trips
    results = store.evaluate(queries)
    assert store.round_trips - before == 2  # field caps + one _msearch holding one fused search
    assert [r.groups[0].values for r in results] == [
        {"count": 8, "value": 3 if i % 2 == 0 else 2} for i in range(6)
    ]


def test_msearch_batches_are_bounded_and_a_failed_item_fails_only_its_query(
    make_store, client, index, caplog
):
    store = make_store(client, index, msearch_max=2)
    queries = [Query(f"ok{i}", WINDOW, {"n": Count()}, Eq("model_version", f"v{i}")) for i in range(4)] + [
        Query("bad", WINDOW, {"n": Count()}, Eq("status", "not-a-number"))
    ]
    before = store.round_trips
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        results = store.evaluate(queries)
    assert store.round_trips - before == 1 + 3  # field caps + 5 searches in _msearch requests of 2
    assert [r.groups[0].values["n"] for r in results[:4]] == [
        0,
        0,
        4,
        4,
    ]  # v2: three "api" docs and one "web" doc
    assert results[4].groups == ()
    assert results[4].error is not None
    assert "not-a-number" in results[4].error
    assert f"query bad on {client} at " in caplog.text


def test_evidence_and_buckets_come_back_for_the_rules_service_only(make_store, client, index):
    # ``where`` equalities are read per document (``cells.split_where``), not as query clauses:
    # the store still sends back only the documents and buckets of the service the rule asks about.
    store = make_store(client, index)
    answers: list[dict[str, object]] = []
    backend = store._backend
    sent = backend.msearch

    def recorded(index_name: str, lines: bytes, filter_path: str) -> dict[str, object]:
        answers.append(sent(index_name, lines, filter_path))
        return answers[-1]

    backend.msearch = recorded  # type: ignore[method-assign]
    evidence = Query("e", WINDOW, {"e": Samples(size=2, fields=("service", "status"))}, Eq("service", "web"))
    counts = Query("n", WINDOW, {"n": Count()}, Eq("service", "api"), buckets=timedelta(minutes=5))
    found, counted = store.evaluate([evidence, counts])
    assert found.groups[0].values["e"].documents == ({"service": "web", "status": 404},)
    assert [g.values["n"] for g in counted.groups] == [8]
    answer = repr(answers[-1])
    assert "'api'" not in answer.replace("'key': 'api'", "")  # no api document in the evidence
    assert "'web'" not in answer.replace("'key': 'web'", "").replace("'service': 'web'", "")


def test_a_failing_query_fused_with_good_ones_fails_alone(make_store, client, index):
    store = make_store(client, index)
    good = Query("good", WINDOW, {"n": Count(), "e": CountWhere(Range("status", gte=500))}, API)
    bad = Query("bad", WINDOW, {"n": Count(), "e": CountWhere(Eq("status", "oops"))}, API)
    results = store.evaluate([good, bad])
    assert results[0].ok
    assert results[0].groups[0].values == {"n": 8, "e": 2}
    assert not results[1].ok
    assert "oops" in (results[1].error or "")


def test_missing_and_empty_values_are_one_group(search_server, make_store, client, fresh_index):
    name = fresh_index("watcher-empty")
    docs = [
        _doc(1, model_version="", latency_ms=10.0, status=200),
        _doc(2, latency_ms=30.0, status=500),
        _doc(3, model_version="v2", latency_ms=20.0, status=200),
    ]
    search_server.create_index(name, PROPERTIES, docs)
    store = make_store(client, name)
    aggregates = {
        "n": Count(),
        "e": CountWhere(Eq("status", 500)),
        "s": Stats("latency_ms"),
        "t": Terms("status"),
    }
    result = one(store, aggregates, where=MATCH_ALL, group_by=("model_version",))
    assert {g.key["model_version"]: dict(g.values) for g in result.groups} == {
        "": {
            "n": 2,
            "e": 1,
            "s": {"count": 2, "sum": 40.0, "min": 10.0, "max": 30.0, "avg": 20.0},
            "t": {"200": 1, "500": 1},
        },
        "v2": {
            "n": 1,
            "e": 0,
            "s": {"count": 1, "sum": 20.0, "min": 20.0, "max": 20.0, "avg": 20.0},
            "t": {"200": 1},
        },
    }

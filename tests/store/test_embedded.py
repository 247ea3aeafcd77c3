"""The embedded store answers every filter and aggregate as the query contract says, on a real DuckDB file.

The documents below are few enough that every expected value is computed by hand in the test.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from watcher.config import EmbeddedSource
from watcher.query import (
    Aggregate,
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    QueryResult,
    Stats,
    Terms,
    Window,
)
from watcher.query_filters import MATCH_ALL, And, Eq, Exists, Filter, In, Not, Or, Range, parse_filter
from watcher.store.base import StoreError
from watcher.store.embedded import EmbeddedStore, from_source

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=1))
DOCS: list[dict[str, Any]] = [
    # one second apart from T0; the last one sits exactly on the window's end (excluded)
    {"service": "api", "status": 200, "latency_ms": 10, "model_version": "v1", "ok": True,
     "client_id": "a", "features": {"age": 30, "country": "FR"}},
    {"service": "api", "status": 500, "latency_ms": 20, "model_version": "v1", "ok": False,
     "client_id": "b", "features": {"age": 40, "country": "US"}},
    {"service": "api", "status": 503, "latency_ms": 30, "model_version": "v2", "ok": "true",
     "client_id": "a", "features": {"age": 50}},
    {"service": "batch", "status": "200", "latency_ms": "slow", "model_version": None,
     "features": {"country": "FR"}},
    {"service": "api", "status": 429, "latency_ms": 40, "client_id": None,
     "features": {"age": "old", "country": "DE"}},
]  # fmt: skip
LATE = {"service": "api", "status": 500, "latency_ms": 1000, "model_version": "v1", "client_id": "z"}


def filled(path: Path) -> EmbeddedStore:
    store = EmbeddedStore(path)
    lines = [
        json.dumps({"@timestamp": (T0 + timedelta(seconds=i)).isoformat(), **d}) for i, d in enumerate(DOCS)
    ]
    lines.append(json.dumps({"@timestamp": WINDOW.end.isoformat(), **LATE}))
    report = store.ingest_lines(lines)
    assert report.rows_stored == len(DOCS) + 1
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    """One store for the read-only tests of this module (queries never write)."""
    store = filled(tmp_path_factory.mktemp("embedded") / "logs.duckdb")
    yield store
    store.close()


def one(store: EmbeddedStore, agg: Aggregate, where: Filter = MATCH_ALL, window: Window = WINDOW) -> object:
    """The single value of an ungrouped query with one aggregate."""
    (result,) = store.evaluate([Query("q", window, {"v": agg}, where)])
    assert result.ok, result.error
    (group,) = result.groups
    assert group.key == {}
    return group.values["v"]


def grouped(result: QueryResult, name: str = "v") -> dict[tuple[str, ...], object]:
    assert result.ok, result.error
    return {tuple(g.key.values()): g.values[name] for g in result.groups}


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Case:
    where: Filter
    expected: int


FILTER_CASES = {
    "match all": Case(And(()), 5),
    "string equals": Case(Eq("service", "api"), 4),
    "number equals compares numerically (the string '200' too)": Case(Eq("status", 200), 2),
    "number equals, float form": Case(Eq("status", 500.0), 1),
    "string equals compares the text of numbers": Case(Eq("status", "200"), 2),
    "boolean equals only JSON true": Case(Eq("ok", True), 1),
    "boolean false": Case(Eq("ok", False), 1),
    "string 'true' is a string": Case(Eq("ok", "true"), 2),
    "in numbers": Case(In("status", (500, 503)), 2),
    "in strings": Case(In("model_version", ("v1", "v2")), 3),
    "in mixed kinds": Case(In("status", (429, "503")), 2),
    "in nothing": Case(In("status", ()), 0),
    "range half-open": Case(Range("latency_ms", gte=20, lt=40), 2),
    "range exclusive and inclusive": Case(Range("latency_ms", gt=20, lte=40), 2),
    "range skips non-numbers": Case(Range("latency_ms", gte=0), 4),
    "range over numeric strings": Case(Range("status", gte=200, lt=201), 2),
    "exists means present and not null": Case(Exists("model_version"), 3),
    "exists on a nested field": Case(Exists("features.age"), 4),
    "not equals includes missing fields": Case(Not(Eq("model_version", "v1")), 3),
    "not exists": Case(Not(Exists("client_id")), 2),
    "or": Case(Or((Eq("status", 429), Eq("service", "batch"))), 2),
    "and": Case(And((Eq("service", "api"), Range("status", gte=500))), 2),
    "empty or matches nothing": Case(Or(()), 0),
    "nested dotted field": Case(Eq("features.country", "FR"), 2),
    "missing field equals nothing": Case(Eq("nope", "x"), 0),
    "rule-file form": Case(parse_filter({"status": {"gte": 400}, "model_version": {"ne": "v2"}}), 2),
}


@pytest.mark.parametrize("case", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_filters_match_the_hand_counted_documents(store: EmbeddedStore, case: Case) -> None:
    assert one(store, Count(), case.where) == case.expected


def test_window_is_half_open(store: EmbeddedStore) -> None:
    assert one(store, Count(), window=Window(T0 + timedelta(seconds=1), T0 + timedelta(seconds=3))) == 2
    assert one(store, Count(), window=Window(WINDOW.end, WINDOW.end + timedelta(seconds=1))) == 1


def test_window_bounds_in_any_offset_mean_the_same_instant(store: EmbeddedStore) -> None:
    paris = timezone(timedelta(hours=2))
    assert one(store, Count(), window=Window(T0.astimezone(paris), WINDOW.end.astimezone(paris))) == 5


# --------------------------------------------------------------------------- aggregates


AGGREGATE_CASES: dict[str, tuple[Aggregate, object]] = {
    "count": (Count(), 5),
    "count where": (CountWhere(Range("status", gte=500)), 2),
    "percentiles are exact and keyed as given": (
        Percentiles("latency_ms", (50.0, 99.0)),
        {50.0: 25.0, 99.0: pytest.approx(39.7)},
    ),
    "stats over numeric values only": (
        Stats("latency_ms"),
        {"avg": 25.0, "min": 10.0, "max": 40.0, "sum": 100.0, "count": 4},
    ),
    "cardinality of non-null values": (Cardinality("client_id"), 2),
    "cardinality reads numbers and numeric strings alike": (Cardinality("status"), 4),
    "histogram: underflow first, edges start buckets, overflow last": (
        Histogram("features.age", (30.0, 40.0)),
        [0, 1, 2],
    ),
    "histogram with an underflow": (Histogram("latency_ms", (15.0, 35.0)), [1, 2, 1]),
    "terms: by count, ties by value": (Terms("features.country", 10), {"FR": 2, "DE": 1, "US": 1}),
    "terms cut to size": (Terms("service", 1), {"api": 4}),
    "terms of numbers are strings": (Terms("status", 1), {"200": 2}),
    "missing counts absent and null": (Missing("model_version"), 2),
    "missing on nested field": (Missing("features.age"), 1),
}


@pytest.mark.parametrize(("agg", "expected"), AGGREGATE_CASES.values(), ids=AGGREGATE_CASES.keys())
def test_aggregates_give_the_hand_computed_values(
    store: EmbeddedStore, agg: Aggregate, expected: object
) -> None:
    value = one(store, agg)
    assert value == expected
    if isinstance(expected, dict):
        assert list(value) == list(expected)  # type: ignore[call-overload]


def test_aggregates_respect_the_query_filter(store: EmbeddedStore) -> None:
    api = Eq("service", "api")
    assert one(store, Stats("latency_ms"), api) == {
        "avg": 25.0,
        "min": 10.0,
        "max": 40.0,
        "sum": 100.0,
        "count": 4,
    }
    assert one(store, Terms("features.country"), api) == {"DE": 1, "FR": 1, "US": 1}
    assert one(store, Missing("client_id"), api) == 1
    assert one(store, CountWhere(Eq("ok", True)), Eq("model_version", "v2")) == 0


def test_a_value_on_an_edge_without_a_short_decimal_lands_in_the_bin_above(tmp_path: Path) -> None:
    """Edges such as 0.1 + 0.2 or the smallest double are compared exactly: a value equal to an
    edge opens its bin, the double just below it stays in the bin before."""
    edges = (-0.0, 5e-324, 0.1 + 0.2, 1 / 3, 1e300)
    values = [v for edge in edges for v in (math.nextafter(edge, -math.inf), edge)] + [-1e308, 1e308]
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    moments = [(T0 + timedelta(seconds=i)).isoformat() for i in range(len(values))]
    store.ingest_lines(json.dumps({"@timestamp": at, "x": v}) for at, v in zip(moments, values, strict=True))
    expected = [0] * (len(edges) + 1)
    for value in values:
        expected[bisect.bisect_right(edges, value)] += 1
    assert expected == [2] * 6
    assert one(store, Histogram("x", edges)) == expected
    store.close()


def test_an_empty_window_still_has_one_group(store: EmbeddedStore) -> None:
    empty = Window(T0 - timedelta(hours=1), T0 - timedelta(minutes=30))
    aggregates: Mapping[str, Aggregate] = {
        "n": Count(),
        "bad": CountWhere(Eq("status", 500)),
        "p": Percentiles("latency_ms", (99.0,)),
        "s": Stats("latency_ms"),
        "c": Cardinality("client_id"),
        "h": Histogram("latency_ms", (10.0,)),
        "t": Terms("service"),
        "m": Missing("client_id"),
    }
    plain, split = store.evaluate(
        [Query("plain", empty, aggregates), Query("split", empty, aggregates, group_by=("model_version",))]
    )
    assert [g.key for g in plain.groups] == [{}]
    assert plain.groups[0].values == {
        "n": 0,
        "bad": 0,
        "p": {99.0: None},
        "s": {"avg": None, "min": None, "max": None, "sum": None, "count": 0},
        "c": 0,
        "h": [0, 0],
        "t": {},
        "m": 0,
    }
    assert split.ok
    assert split.groups == ()


# --------------------------------------------------------------------------- group_by


def test_group_by_uses_string_values_and_empty_for_missing(store: EmbeddedStore) -> None:
    (result,) = store.evaluate([Query("q", WINDOW, {"v": Count()}, group_by=("model_version",))])
    assert grouped(result) == {("",): 2, ("v1",): 2, ("v2",): 1}


def test_group_by_two_fields_and_numbers(store: EmbeddedStore) -> None:
    (result,) = store.evaluate([Query("q", WINDOW, {"v": Count()}, group_by=("service", "status"))])
    assert grouped(result) == {
        ("api", "200"): 1,
        ("api", "500"): 1,
        ("api", "503"): 1,
        ("api", "429"): 1,
        ("batch", "200"): 1,
    }
    assert list(result.groups[0].key) == ["service", "status"]


def test_groups_carry_every_aggregate(store: EmbeddedStore) -> None:
    query = Query(
        "q",
        WINDOW,
        {
            "n": Count(),
            "errors": CountWhere(Range("status", gte=500)),
            "p50": Percentiles("latency_ms", (50.0,)),
            "clients": Cardinality("client_id"),
            "ages": Histogram("features.age", (45.0,)),
            "countries": Terms("features.country"),
        },
        where=Eq("service", "api"),
        group_by=("model_version",),
    )
    (result,) = store.evaluate([query])
    by_version = {g.key["model_version"]: dict(g.values) for g in result.groups}
    assert by_version == {
        "": {"n": 1, "errors": 0, "p50": {50.0: 40.0}, "clients": 0, "ages": [0, 0], "countries": {"DE": 1}},
        "v1": {"n": 2, "errors": 1, "p50": {50.0: 15.0}, "clients": 2, "ages": [2, 0],
               "countries": {"FR": 1, "US": 1}},
        "v2": {"n": 1, "errors": 1, "p50": {50.0: 30.0}, "clients": 1, "ages": [0, 1], "countries": {}},
    }  # fmt: skip


def test_cardinality_of_windows_sharing_an_end_or_not(store: EmbeddedStore) -> None:
    """Clients a (at +0 s and +2 s) and b (+1 s), z at the minute's end: each window counts the
    clients it holds, whether it ends with the others of the batch or before them."""
    seconds = {"0-60": (0, 60), "1-60": (1, 60), "2-60": (2, 60), "3-60": (3, 60),
               "0-2": (0, 2), "1-2": (1, 2), "1-61": (1, 61)}  # fmt: skip
    queries = [
        Query(
            name,
            Window(T0 + timedelta(seconds=lo), T0 + timedelta(seconds=hi)),
            {"v": Cardinality("client_id")},
        )
        for name, (lo, hi) in seconds.items()
    ]
    counts = {r.query_id: r.groups[0].values["v"] for r in store.evaluate(queries)}
    assert counts == {"0-60": 2, "1-60": 2, "2-60": 1, "3-60": 0, "0-2": 2, "1-2": 1, "1-61": 3}


def test_group_only_present_in_another_querys_window_is_left_out(store: EmbeddedStore) -> None:
    wide = Window(T0, WINDOW.end + timedelta(seconds=1))
    narrow, both = store.evaluate(
        [
            Query("narrow", WINDOW, {"v": Count()}, where=Eq("client_id", "z"), group_by=("client_id",)),
            Query("wide", wide, {"v": Count()}, where=Eq("client_id", "z"), group_by=("client_id",)),
        ]
    )
    assert narrow.groups == ()
    assert grouped(both) == {("z",): 1}


# --------------------------------------------------------------------------- batches and errors


def test_results_come_back_in_query_order(store: EmbeddedStore) -> None:
    yesterday = WINDOW.shifted(timedelta(days=1))
    queries = [
        Query("b", WINDOW, {"v": Count()}, group_by=("service",)),
        Query("a", yesterday, {"v": Count()}),
        Query("c", WINDOW.shifted(-timedelta(minutes=1)), {"v": Count()}),
    ]
    results = store.evaluate(queries)
    assert [r.query_id for r in results] == ["b", "a", "c"]
    assert [grouped(r) for r in results] == [{("api",): 4, ("batch",): 1}, {(): 0}, {(): 1}]


REFUSED = {
    "naive window": (
        Query("bad", Window(datetime(2024, 6, 1), datetime(2024, 6, 2)), {"v": Count()}),
        "query 'bad': window bounds must be timezone-aware, got 2024-06-01 00:00:00",
    ),
    "percentile out of range": (
        Query("bad", WINDOW, {"p": Percentiles("latency_ms", (150.0,))}),
        "query 'bad', aggregate 'p': percentile q must be within 0..100, got 150.0",
    ),
    "no percentiles": (
        Query("bad", WINDOW, {"p": Percentiles("latency_ms", ())}),
        "query 'bad', aggregate 'p': percentiles need at least one q",
    ),
    "histogram edges not increasing": (
        Query("bad", WINDOW, {"h": Histogram("latency_ms", (10.0, 10.0))}),
        "query 'bad', aggregate 'h': histogram edges must increase strictly, got (10.0, 10.0)",
    ),
    "histogram without edges": (
        Query("bad", WINDOW, {"h": Histogram("latency_ms", ())}),
        "query 'bad', aggregate 'h': histogram edges must increase strictly, got ()",
    ),
    "terms size": (
        Query("bad", WINDOW, {"t": Terms("service", 0)}),
        "query 'bad', aggregate 't': terms size must be at least 1, got 0",
    ),
    "unknown aggregate": (
        Query("bad", WINDOW, {"x": "median"}),  # type: ignore[dict-item]
        "query 'bad', aggregate 'x': unsupported aggregate str",
    ),
    "unknown filter": (
        Query("bad", WINDOW, {"v": Count()}, where=Not("x")),  # type: ignore[arg-type]
        "query 'bad', where: unsupported filter str",
    ),
    "bad filter value": (
        Query("bad", WINDOW, {"v": CountWhere(Eq("service", None))}),  # type: ignore[arg-type]
        "query 'bad', aggregate 'v': values must be strings, numbers or booleans, got None",
    ),
}


@pytest.mark.parametrize(("query", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_query_fails_alone_with_its_reason(
    store: EmbeddedStore, query: Query, message: str
) -> None:
    good = Query("good", WINDOW, {"v": Count()})
    for evaluate in (store.evaluate, store.evaluate_unfused):
        before, bad, after = evaluate([good, query, good])
        assert bad.error == message
        assert bad.groups == ()
        assert grouped(before) == grouped(after) == {(): 5}


def test_a_query_failing_in_duckdb_fails_alone(store: EmbeddedStore) -> None:
    # A lone surrogate cannot be sent to DuckDB: the fused statement fails, the store falls
    # back to one statement per query, and only this query reports the error.
    broken = Query("broken", WINDOW, {"v": Count()}, where=Eq("service", "\ud800"))
    good = Query("good", WINDOW, {"v": Count(), "p": Percentiles("latency_ms", (50.0,))})
    first, bad, last = store.evaluate([good, broken, good])
    assert bad.error is not None
    assert bad.error.startswith("DuckDB: ")
    assert "surrogate" in bad.error
    assert first.ok
    assert last == first
    assert first.groups[0].values == {"v": 5, "p": {50.0: 25.0}}


def test_an_empty_batch_answers_nothing(store: EmbeddedStore) -> None:
    assert store.evaluate([]) == []
    assert store.evaluate_unfused([]) == []


def test_a_closed_store_refuses_with_a_store_error(tmp_path: Path) -> None:
    store = filled(tmp_path / "logs.duckdb")
    store.close()
    with pytest.raises(StoreError, match=r"^embedded store .*logs\.duckdb is closed$"):
        store.evaluate([Query("q", WINDOW, {"v": Count()})])
    store.close()  # closing twice is harmless


def test_inspection_helpers(store: EmbeddedStore, tmp_path: Path) -> None:
    assert store.row_count() == 6
    assert store.time_range() == (T0, WINDOW.end)
    empty = EmbeddedStore(tmp_path / "empty.duckdb")
    assert empty.row_count() == 0
    assert empty.time_range() is None
    empty.close()


def test_from_source_opens_the_configured_file(tmp_path: Path) -> None:
    source = EmbeddedSource(
        store="embedded",
        path=tmp_path / "data" / "logs.duckdb",
        time_field="ts",
        time_format="epoch_s",
        retention="1d",
    )
    store = from_source(source)
    assert (store.path, store.time_field, store.retention) == (source.path, "ts", timedelta(days=1))
    assert store.time_format == "epoch_s"
    assert store.ingest_lines(['{"ts": 1717243200, "a": 1}']).rows_stored == 1
    store.close()
    assert source.path.exists()

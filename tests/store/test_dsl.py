"""The query -> DSL compiler and the page reader, without a server: the exact bodies sent and how
a page of a fused search is read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from watcher.query import (
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Stats,
    Terms,
    Window,
)
from watcher.query_filters import MATCH_ALL, And, Eq, Exists, In, Not, Or, Range
from watcher.store.dsl import (
    compile_aggregate,
    compile_filter,
    fuse,
    search_body,
    time_range,
)
from watcher.store.dsl_pages import read_page
from watcher.store.mapping_check import FieldCatalog

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=5))
T0_MS = 1767600000000
CATALOG = FieldCatalog(
    "logs-*",
    ("logs-1",),
    {
        "@timestamp": frozenset({"date"}),
        "status": frozenset({"long"}),
        "latency_ms": frozenset({"float"}),
        "service": frozenset({"text"}),
        "service.keyword": frozenset({"keyword"}),
        "model_version": frozenset({"keyword"}),
    },
)


def test_time_range_is_epoch_millis_rounded_up():
    assert time_range("@timestamp", WINDOW) == {
        "range": {"@timestamp": {"gte": T0_MS, "lt": T0_MS + 300_000, "format": "epoch_millis"}}
    }
    plus_two = timezone(timedelta(hours=2))
    odd = Window((T0 + timedelta(microseconds=1)).astimezone(plus_two), T0 + timedelta(microseconds=999))
    assert time_range("t", odd)["range"]["t"]["gte"] == T0_MS + 1
    assert time_range("t", odd)["range"]["t"]["lt"] == T0_MS + 1
    before_epoch = Window(datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC), T0)
    assert time_range("t", before_epoch)["range"]["t"]["gte"] == 0


def test_ungrouped_body():
    (fused,) = fuse([(0, Query("q", WINDOW, {"n": Count(), "e": CountWhere(Range("status", gte=500))}))])
    assert search_body(fused, CATALOG, "@timestamp", 1000) == {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": [time_range("@timestamp", WINDOW)]}},
        "aggs": {"a1": {"filter": {"range": {"status": {"gte": 500}}}}},
    }


def test_grouped_body_pages_with_composite():
    query = Query("q", WINDOW, {"n": Count()}, Eq("service", "api"), ("model_version", "service"))
    (fused,) = fuse([(0, query)])
    body = search_body(fused, CATALOG, "@timestamp", 50, after={"k0": "v2", "k1": None})
    assert body == {
        "size": 0,
        "query": {
            "bool": {"filter": [time_range("@timestamp", WINDOW), {"term": {"service.keyword": "api"}}]}
        },
        "aggs": {
            "g": {
                "composite": {
                    "size": 50,
                    "sources": [
                        {"k0": {"terms": {"field": "model_version", "missing_bucket": True}}},
                        {"k1": {"terms": {"field": "service.keyword", "missing_bucket": True}}},
                    ],
                    "after": {"k0": "v2", "k1": None},
                }
            }
        },
    }


def test_fusion_shares_identical_aggregates_and_keeps_query_names():
    a = Query("a", WINDOW, {"count": Count(), "value": CountWhere(Eq("status", 500))})
    b = Query(
        "b",
        WINDOW,
        {"total": Count(), "fives": CountWhere(Eq("status", 500)), "p": Percentiles("latency_ms", (99.0,))},
    )
    c = Query("c", WINDOW, {"count": Count()}, group_by=("model_version",))
    fused = fuse([(0, a), (1, b), (2, c)])
    assert len(fused) == 2
    assert fused[0].aggs == {
        "a0": Count(),
        "a1": CountWhere(Eq("status", 500)),
        "a2": Percentiles("latency_ms", (99.0,)),
    }
    fused[0].groups.append(({}, {"a0": 7, "a1": 2, "a2": {99.0: 12.0}}))
    results = dict(fused[0].results())
    assert results[0][0].values == {"count": 7, "value": 2}
    assert results[1][0].values == {"total": 7, "fives": 2, "p": {99.0: 12.0}}
    assert [len(f.alone()) for f in fused] == [2, 1]


@pytest.mark.parametrize(
    ("flt", "dsl"),
    [
        (Eq("status", 500), {"term": {"status": 500}}),
        (In("service", ("a", "b")), {"terms": {"service.keyword": ["a", "b"]}}),
        (Range("latency_ms", gt=1.5, lte=9), {"range": {"latency_ms": {"gt": 1.5, "lte": 9}}}),
        (Exists("service"), {"exists": {"field": "service"}}),
        (Not(Eq("model_version", "v1")), {"bool": {"must_not": [{"term": {"model_version": "v1"}}]}}),
        (MATCH_ALL, {"match_all": {}}),
        (Or(()), {"match_none": {}}),
        (
            Or((Eq("status", 429), And((Eq("status", 503), Exists("model_version"))))),
            {
                "bool": {
                    "should": [
                        {"term": {"status": 429}},
                        {
                            "bool": {
                                "filter": [{"term": {"status": 503}}, {"exists": {"field": "model_version"}}]
                            }
                        },
                    ],
                    "minimum_should_match": 1,
                }
            },
        ),
    ],
)
def test_filters(flt, dsl):
    assert compile_filter(flt, CATALOG) == dsl


@pytest.mark.parametrize(
    ("aggregate", "dsl"),
    [
        (Count(), None),
        (Missing("service"), {"filter": {"bool": {"must_not": [{"exists": {"field": "service"}}]}}}),
        (Missing("status"), {"missing": {"field": "status"}}),
        (
            Percentiles("latency_ms", (50.0, 99.9)),
            {"percentiles": {"field": "latency_ms", "percents": [50.0, 99.9], "keyed": False}},
        ),
        (Stats("latency_ms"), {"stats": {"field": "latency_ms"}}),
        (Cardinality("service"), {"cardinality": {"field": "service.keyword", "precision_threshold": 40000}}),
        (Terms("status", 5), {"terms": {"field": "status", "size": 5}}),
        (
            Histogram("latency_ms", (10.0, 20.0, 50.0)),
            {
                "range": {
                    "field": "latency_ms",
                    "ranges": [
                        {"to": 10.0},
                        {"from": 10.0, "to": 20.0},
                        {"from": 20.0, "to": 50.0},
                        {"from": 50.0},
                    ],
                }
            },
        ),
        (Histogram("latency_ms", ()), {"range": {"field": "latency_ms", "ranges": [{}]}}),
    ],
)
def test_aggregates(aggregate, dsl):
    assert compile_aggregate(aggregate, CATALOG) == dsl


def test_read_page_follows_after_key_only_on_a_full_page():
    (fused,) = fuse([(0, Query("q", WINDOW, {"n": Count()}, group_by=("model_version",)))])
    buckets = [{"key": {"k0": "v2"}, "doc_count": 3}, {"key": {"k0": None}, "doc_count": 1}]
    full = read_page(fused, {"aggregations": {"g": {"after_key": {"k0": None}, "buckets": buckets}}}, 2)
    assert full.groups == [({"model_version": "v2"}, {"a0": 3}), ({"model_version": ""}, {"a0": 1})]
    assert full.after == {"k0": None}
    assert (
        read_page(
            fused, {"aggregations": {"g": {"after_key": {"k0": "v2"}, "buckets": buckets[:1]}}}, 2
        ).after
        is None
    )


def test_read_page_of_an_ungrouped_search_is_one_group():
    (fused,) = fuse([(0, Query("q", WINDOW, {"n": Count()}))])
    assert read_page(fused, {"hits": {"total": {"value": 0, "relation": "eq"}}}, 10).groups == [
        ({}, {"a0": 0})
    ]
    assert read_page(fused, {"hits": {"total": 5}}, 10).groups == [({}, {"a0": 5})]

"""Bodies rendered from a shape's template are the bodies compiled anew, window after window: the
same bytes, and the same composite keys and cells read back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.store.test_dsl import CATALOG
from watcher.query import Count, CountWhere, Histogram, Missing, Percentiles, Query, Samples, Window
from watcher.query_filters import MATCH_ALL, Eq, In, Range
from watcher.store.dsl import FusedSearch, fuse, search_body
from watcher.store.dsl_bodies import BodyCache, encode
from watcher.store.mapping_check import FieldCatalog

T0 = datetime(2026, 1, 5, 8, 0, 30, tzinfo=UTC)
MARKER_LIKE = "\x00watcher-start\x00"

SHAPES = {
    "ungrouped": Query("q", Window(T0, T0), {"n": Count(), "e": CountWhere(Range("status", gte=500))}),
    "grouped": Query(
        "q",
        Window(T0, T0),
        {"p": Percentiles("latency_ms", (99.0,))},
        Eq("service", "api"),
        ("model_version",),
    ),
    "bucketed": Query(
        "q",
        Window(T0, T0),
        {
            "n": Count(),
            "c": CountWhere(In("model_version", ("v1", "v2"))),
            "m": Missing("model_version"),
            "h": Histogram("latency_ms", (10.0, 100.0)),
        },
        Eq("service", "api"),
        ("model_version",),
        buckets=timedelta(minutes=1),
    ),
    "samples": Query(
        "q", Window(T0, T0), {"s": Samples(MATCH_ALL, 3, (), "latency_ms")}, Eq("service", "api")
    ),
    "a value spelled like a marker": Query("q", Window(T0, T0), {"n": Count()}, Eq("service", MARKER_LIKE)),
}


def _fused(query: Query, start: datetime) -> FusedSearch:
    (fused,) = fuse([(0, replace(query, window=Window(start, start + timedelta(minutes=5))))])
    return fused


@pytest.mark.parametrize("name", SHAPES)
def test_rendered_bodies_are_the_compiled_ones_window_after_window(name: str) -> None:
    query, cache = SHAPES[name], BodyCache("@timestamp", 1000)
    for minute in (0, 1, 2, 61, 60 * 24 * 400):
        start = T0 + timedelta(minutes=minute, milliseconds=minute % 7)
        rendered, compiled = (_fused(query, start) for _ in range(2))
        expected = encode(search_body(compiled, CATALOG, "@timestamp", 1000))
        assert cache.body(rendered, CATALOG, None) == expected
        assert (rendered.pushed, rendered.cells) == (compiled.pushed, compiled.cells)


def test_a_next_page_is_compiled_with_its_after_key() -> None:
    cache = BodyCache("@timestamp", 10)
    fused = _fused(SHAPES["grouped"], T0)
    after = {"k0": "v2"}
    expected = encode(search_body(_fused(SHAPES["grouped"], T0), CATALOG, "@timestamp", 10, after))
    assert cache.body(fused, CATALOG, after) == expected


def test_a_shape_of_other_objects_or_another_mapping_gets_its_own_body() -> None:
    """Templates are found by the identity of the shape's filter and aggregates: an equal shape of
    new objects (a reloaded rule) renders the same body, another filter its own, and after the
    mapping changed (``clear``) a field is resolved through the new mapping."""
    cache, query = BodyCache("@timestamp", 1000), SHAPES["grouped"]

    def body(asked: Query, catalog: FieldCatalog = CATALOG) -> bytes:
        return cache.body(_fused(asked, T0), catalog, None)

    def compiled(asked: Query, catalog: FieldCatalog = CATALOG) -> bytes:
        return encode(search_body(_fused(asked, T0), catalog, "@timestamp", 1000))

    assert body(query) == compiled(query)
    percentile = {"p": Percentiles("latency_ms", (99.0,))}
    reloaded = replace(query, where=Eq("service", "api"), aggregates=percentile)
    assert body(reloaded) == compiled(query)
    other = replace(query, where=Eq("service", "web"))
    assert body(other) == compiled(other) != compiled(query)
    keyword = FieldCatalog("logs-*", ("logs-1",), {**CATALOG.types, "service": frozenset({"keyword"})})
    cache.clear()  # the store fetched the mapping again
    assert body(query, keyword) == compiled(query, keyword) != compiled(query)

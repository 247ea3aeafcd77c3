"""Per-bucket partials on the search store (osmem-server): a minute-by-minute replay of the demo
around its 5xx burst tells the same incidents as re-reading every window, and a steady tick asks the
server for the newest minute only, in one bucketed search per rule.

Percentiles differ by design: re-reading gets the server's t-digest estimate, partials the exact
value (DuckDB's), so values are compared within the estimate's tolerance."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from tests.store.partials_replay import assert_same, replay
from watcher.demo import DEMO_START, generate
from watcher.query import Count, CountWhere, Percentiles, Query, Window
from watcher.query_filters import Range
from watcher.store.bulk import load_lines
from watcher.store.embedded import EmbeddedStore
from watcher.store.partials import Partials

LENGTH = timedelta(minutes=100)
EVERY = timedelta(minutes=1)
RULES = (  # the kinds that fire in this stretch, and a percentile
    "prediction-5xx-rate",
    "prediction-5xx-spike",
    "prediction-latency-p99",
    "prediction-traffic-flatline",
)


@pytest.fixture(scope="module")
def demo_lines() -> list[str]:
    return [json.dumps(doc) for doc in generate(DEMO_START, LENGTH, seed=7)]


@pytest.fixture(scope="module")
def demo_index(search_server, demo_lines):
    from tests.store.conftest import source_for
    from watcher.store.search import SearchStore

    index = f"watcher-partials-{uuid.uuid4().hex[:6]}"
    loader = SearchStore(source_for(search_server, "opensearch", index, timeout="5m"))
    assert load_lines(loader, demo_lines, index).indexed == len(demo_lines)
    loader.close()
    yield index
    search_server.delete_index(index)


def test_the_demo_replayed_on_the_search_store_tells_the_same(demo_index, make_store, tmp_path):
    start, end = DEMO_START + timedelta(minutes=55), DEMO_START + LENGTH

    def run(partials: bool):
        store = make_store("opensearch", demo_index, timeout="2m")
        return replay(store, tmp_path, start, end, partials=partials, only=RULES)

    reread = run(partials=False)
    assert len(reread.events) >= 2  # the 5xx burst fired and resolved
    assert_same(run(partials=True), reread, rel=0.05)


def test_a_steady_tick_sends_one_search_of_the_newest_minute(demo_index, make_store, demo_lines, tmp_path):
    search = make_store("opensearch", demo_index, timeout="2m")
    bodies = []
    send = search._msearch

    def spy(batch):
        bodies.extend(json.loads(body) for body in batch)
        return send(batch)

    search._msearch = spy
    partials = Partials(search)
    embedded = EmbeddedStore(tmp_path / "logs.duckdb")
    embedded.ingest_lines(demo_lines)
    aggregates = {"count": Count(), "errors": CountWhere(Range("status", gte=500)),
                  "p": Percentiles("latency_ms", (50.0, 99.0))}  # fmt: skip
    end = DEMO_START + timedelta(minutes=65, seconds=30)
    for minute in range(3):
        window = Window.ending_at(end + minute * EVERY, timedelta(minutes=5))
        query = Query("q", window, aggregates, group_by=("model_version",), every=EVERY)
        (got,) = partials.evaluate([query])
        (exact,) = embedded.evaluate([query])
        # percentiles too: exact, where the server alone estimates them
        assert [g.key for g in got.groups] == [g.key for g in exact.groups]
        for mine, theirs in zip(got.groups, exact.groups, strict=True):
            assert mine.values["p"] == pytest.approx(theirs.values["p"], rel=1e-12)
            assert {**mine.values, "p": None} == {**theirs.values, "p": None}
    embedded.close()
    assert len(bodies) == 3
    for minute, body in enumerate(bodies[1:], 1):
        newest = body["query"]["bool"]["filter"][0]["range"]["@timestamp"]
        start = end + (minute - 1) * EVERY
        assert newest["lt"] - newest["gte"] == 60_000
        assert newest["gte"] == int(start.timestamp() * 1000)

"""Per-bucket partials (``watcher.store.partials``) on the embedded store: each row is read once per
rule, and every answer -- and every notification of a minute-by-minute replay of the demo -- is
the one re-reading each window gives."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.store.partials_replay import Replayed, assert_same, replay
from watcher.demo import DEMO_LENGTH, DEMO_START, SCENARIO, generate
from watcher.query import (
    SKETCH_ERROR,
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
from watcher.query_filters import Range
from watcher.store.embedded import EmbeddedStore
from watcher.store.partials import Partials

EVERY = timedelta(minutes=1)
AGGREGATES = {
    "count": Count(),
    "errors": CountWhere(Range("status", gte=500)),
    "no-tenure": Missing("features.tenure_months"),
    "latency": Stats("latency_ms"),
    "p": Percentiles("latency_ms", (50.0, 99.0)),
    "age": Histogram("features.age", (25.0, 40.0, 60.0)),
    "countries": Terms("features.country", 3),
    "clients": Cardinality("client_id"),
}


class Counting:
    """The embedded store, remembering the bucketed windows it was asked for."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store, self.windows = store, []

    def evaluate(self, queries):
        self.windows += [(q.window, q.buckets) for q in queries if q.buckets is not None]
        return self.store.evaluate(queries)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path_factory.mktemp("partials") / "logs.duckdb")
    store.ingest_lines(json.dumps(doc) for doc in generate(DEMO_START, DEMO_LENGTH, seed=7))
    yield store
    store.close()


def rule_query(end, group_by=(), window=timedelta(minutes=5)) -> Query:
    return Query("q", Window(end - window, end), AGGREGATES, group_by=group_by, every=EVERY)


def assert_equal(got: QueryResult, expected: QueryResult) -> None:
    assert got.error is None
    assert expected.error is None
    assert [g.key for g in got.groups] == [g.key for g in expected.groups]
    for mine, theirs in zip(got.groups, expected.groups, strict=True):
        for name, value in theirs.values.items():
            if name in ("latency", "p"):  # floats: summed in another order
                assert mine.values[name] == pytest.approx(value, rel=1e-12), name
            else:
                assert mine.values[name] == value, name


def test_a_steady_tick_asks_the_store_for_the_newest_minute_only(demo_store):
    counting = Counting(demo_store)
    partials = Partials(counting)
    end = DEMO_START + timedelta(minutes=64, seconds=30)
    for minute in range(4):
        at = end + minute * EVERY
        (got,) = partials.evaluate([rule_query(at, ("model_version",))])
        assert_equal(got, demo_store.evaluate([rule_query(at, ("model_version",))])[0])
    first, *steady = counting.windows
    assert first == (Window(end - timedelta(minutes=5), end), EVERY)  # the whole window, once
    assert steady == [(Window(end + (k - 1) * EVERY, end + k * EVERY), EVERY) for k in (1, 2, 3)]
    assert partials.buckets_asked == 5 + 3


def test_windows_of_a_rule_share_buckets_and_memory_stays_bounded(demo_store):
    partials = Partials(demo_store)
    end = DEMO_START + timedelta(minutes=90)
    for minute in range(30):
        at = end + minute * EVERY
        # a spike rule: its window and the three windows before it, in one batch
        queries = [rule_query(at - k * timedelta(minutes=5)) for k in range(4)]
        queries = [Query(f"q{k}", q.window, q.aggregates, every=EVERY) for k, q in enumerate(queries)]
        for got, expected in zip(partials.evaluate(queries), demo_store.evaluate(queries), strict=True):
            assert_equal(got, expected)
    assert partials.buckets_asked == 20 + 29
    (held,) = partials.held.values()
    assert len(held.buckets) <= 2 * 20 + 16  # pruned, amortised: 20 are in use
    assert len(held.answers) <= 2 * 4 + 4  # pruned apart: 4 windows are in use


def test_a_bucket_with_too_many_values_is_answered_by_re_reading(demo_store):
    partials = Partials(demo_store, values_limit=10, distinct_limit=10)
    query = Query("q", Window(DEMO_START, DEMO_START + timedelta(minutes=5)),
                  {"clients": Cardinality("client_id")}, every=EVERY)  # fmt: skip
    (got,) = partials.evaluate([query])
    assert got == demo_store.evaluate([query])[0]
    assert len(partials.direct) == 1  # and asked directly from then on
    (again,) = partials.evaluate([query])
    assert again == got


def test_a_cardinality_of_more_values_than_the_values_limit_slides_from_its_buckets(demo_store):
    """The embedded store lists a cardinality's distinct values without counts: past the limit of
    values with counts, its windows still come from the newest bucket, with the answers of
    re-reading them (before, they were re-read in full at every tick)."""
    counting = Counting(demo_store)
    counting.distinct_values = True
    partials = Partials(counting, values_limit=10)
    aggregates = {"clients": Cardinality("client_id"), "n": Count()}
    start = DEMO_START + timedelta(minutes=30)
    for minute in range(6):
        at = start + minute * EVERY
        queries = [
            Query(f"q{span}", Window(at - timedelta(minutes=span), at), aggregates, group_by=by, every=EVERY)
            for span, by in ((5, ()), (10, ("endpoint",)))
        ]
        for got, expected in zip(partials.evaluate(queries), demo_store.evaluate(queries), strict=True):
            assert_equal(got, expected)
            assert max(group.values["clients"] for group in got.groups) > 10
    assert not partials.direct
    assert partials.buckets_asked == 5 + 10 + 2 * 5  # each window once, then its newest minute


def test_percentiles_of_too_many_values_come_from_a_sketch_within_one_percent(demo_store):
    """Past the values limit a percentile is not re-read: each number is rounded to its
    log-spaced bin, and every answer stays within SKETCH_ERROR of the exact one."""
    partials = Partials(demo_store, values_limit=150)  # a minute: up to 270 numbers, 97 bins
    aggregates = {"p": Percentiles("latency_ms", (50.0, 90.0, 99.0)), "n": Count()}
    start = DEMO_START + timedelta(minutes=30)
    for minute in range(20):
        at = start + minute * EVERY
        query = Query(
            "q", Window(at - timedelta(minutes=10), at), aggregates, group_by=("endpoint",), every=EVERY
        )
        (got,) = partials.evaluate([query])
        (exact,) = demo_store.evaluate([query])
        assert [g.key for g in got.groups] == [g.key for g in exact.groups]
        for mine, theirs in zip(got.groups, exact.groups, strict=True):
            assert mine.values["n"] == theirs.values["n"]
            for q, value in theirs.values["p"].items():
                assert abs(mine.values["p"][q] - value) <= SKETCH_ERROR * abs(value), (q, mine, theirs)
    assert len(partials.sketched) == 1
    assert not partials.direct
    assert partials.evaluate([query]) == [got]  # and from the sketch's buckets from then on


def test_a_row_arriving_after_its_bucket_was_read_is_not_counted(tmp_path: Path):
    store = EmbeddedStore(tmp_path / "late.duckdb")
    start = DEMO_START

    def row(second: int) -> str:
        return json.dumps({"@timestamp": (start + timedelta(seconds=second)).isoformat(), "status": 200})

    store.ingest_lines([row(s) for s in range(0, 300, 10)])
    partials = Partials(store)
    (first,) = partials.evaluate([Query("q", Window(start, start + timedelta(minutes=5)), {"n": Count()},
                                        every=EVERY)])  # fmt: skip
    store.ingest_lines([row(5)])  # late: its minute was read already
    later = Window(start + EVERY, start + timedelta(minutes=6))
    (second,) = partials.evaluate([Query("q", later, {"n": Count()}, every=EVERY)])
    assert first.groups[0].values["n"] == 30
    assert second.groups[0].values["n"] == 24  # minute 0 left the window; the late row is in none
    store.close()


# From shortly before the first injected incident to shortly after the last one ends: the hours
# the incidents are in, quiet stretches between them included (the whole demo adds a sixth of
# quiet minutes only).
REPLAYED = (
    DEMO_START + min(incident.start for incident in SCENARIO) - timedelta(minutes=5),
    DEMO_START + max(incident.start + incident.length for incident in SCENARIO) + timedelta(minutes=10),
)


@pytest.fixture(scope="module")
def reread_demo(demo_store, tmp_path_factory) -> Replayed:
    """The demo replayed minute by minute re-reading every window: what the partials must tell.
    Replayed once for the tests below, each of which replays it once more its own way."""
    return replay(demo_store, tmp_path_factory.mktemp("reread"), *REPLAYED, partials=False)


def test_the_demo_replayed_minute_by_minute_tells_the_same(demo_store, reread_demo, tmp_path: Path):
    told = {(rule, event) for rule, _, event, _ in reread_demo.events}
    shipped = {rule for incident in SCENARIO for rule in incident.rules}
    assert {(rule, event) for rule in shipped for event in ("firing", "resolved")} <= told  # each incident
    assert_same(replay(demo_store, tmp_path, *REPLAYED, partials=True), reread_demo, rel=1e-12)


def test_the_demo_replayed_as_a_backtest_reads_tells_the_same(demo_store, reread_demo, tmp_path: Path):
    """As `watcher backtest` reads: buckets hours ahead of the clock."""
    backtest = replay(demo_store, tmp_path, *REPLAYED, partials=True, read_ahead=True)
    assert_same(backtest, reread_demo, rel=1e-12)


def test_windows_slid_minute_by_minute_answer_as_re_reading_them(demo_store):
    """Each window is the last one of its length plus its newest minute minus its oldest: over
    an hour of the demo (incidents included: groups and values come and go) every answer is
    the one re-reading the window gives."""
    partials = Partials(demo_store)
    sliding = {name: agg for name, agg in AGGREGATES.items() if name != "latency"}  # stats: added up
    start = DEMO_START + timedelta(minutes=20)
    for minute in range(60):
        at = start + minute * EVERY
        queries = [
            Query(
                "5m",
                Window(at - timedelta(minutes=5), at),
                sliding,
                group_by=("model_version",),
                every=EVERY,
            ),
            Query("10m", Window(at - timedelta(minutes=10), at), sliding, every=EVERY),
        ]
        for got, expected in zip(partials.evaluate(queries), demo_store.evaluate(queries), strict=True):
            assert_equal(got, expected)
    assert {length for held in partials.held.values() for length in held.sums} == {5, 10}


def test_windows_on_two_bucket_grids_of_one_series_answer_as_re_reading(demo_store):
    """Two rules with the same filter and aggregates, one evaluating windows that end on the
    minute and one on the half minute: one series, buckets on two grids, each answer as re-read."""
    partials = Partials(demo_store)
    start = DEMO_START + timedelta(minutes=40)
    for minute in range(12):
        at = start + minute * EVERY
        queries = [
            Query("on-minute", Window(at - timedelta(minutes=5), at), AGGREGATES, every=EVERY),
            Query(
                "half",
                Window(at - timedelta(minutes=5, seconds=30), at - timedelta(seconds=30)),
                AGGREGATES,
                every=EVERY,
            ),
        ]
        for got, expected in zip(partials.evaluate(queries), demo_store.evaluate(queries), strict=True):
            assert_equal(got, expected)
    assert len(partials.held) == 1
    assert partials.buckets_asked == 2 * 5 + 2 * 11  # each grid's newest minute per tick


def test_changed_aggregates_under_the_same_filter_are_answered_anew(demo_store):
    """A rule edited in place (same filter object, same names, another condition) is answered
    for what it asks now, not from what was worked out for its earlier form."""
    partials = Partials(demo_store)
    end = DEMO_START + timedelta(minutes=70)
    for gte in (500, 400, 500):
        query = Query("q", Window(end - timedelta(minutes=5), end),
                      {"n": CountWhere(Range("status", gte=gte))}, every=EVERY)  # fmt: skip
        (got,) = partials.evaluate([query])
        assert got == demo_store.evaluate([query])[0]
        end += EVERY


def test_filters_made_afresh_every_tick_keep_memory_bounded(demo_store):
    """A detector that builds its filter anew at every evaluation: what is kept per query does not
    grow with the ticks."""
    partials = Partials(demo_store)
    start = DEMO_START + timedelta(minutes=30)
    for minute in range(150):
        at = start + minute * EVERY
        query = Query("q", Window(at - timedelta(minutes=5), at), {"n": Count()},
                      where=Range("status", gte=500), every=EVERY)  # fmt: skip
        (got,) = partials.evaluate([query])
    assert got == demo_store.evaluate([query])[0]
    assert len(partials.shapes) <= 2 + 64
    assert len(partials.held) == 1

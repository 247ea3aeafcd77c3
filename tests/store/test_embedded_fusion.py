"""The fused scan answers exactly what one statement per query answers, and what a plain Python
reading of the query contract answers, on random documents and random batches of queries."""

from __future__ import annotations

import bisect
import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from watcher.query import (
    BUCKET,
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
from watcher.query_filters import And, Eq, Exists, Filter, In, Not, Or, Range
from watcher.store.embedded import EmbeddedStore
from watcher.store.sql import epoch_ms

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SPAN = timedelta(hours=1)
FIELDS: dict[str, list[Any]] = {
    # None stands for a JSON null; "absent" drops the field
    "service": ["api", "batch", "embed", "absent"],
    "status": [200, 200, 200, 500, 503, 429, "200", "absent"],
    "latency_ms": [1.5, 12.0, 30.25, 99.5, 250.0, "n/a", None, "absent"],
    "version": ["v1", "v2", "v3", None, "absent"],
    "flag": [True, False, "true", "absent"],
    "f.age": [18, 25, 40, 67, "old", "absent"],
}


def random_docs(rng: random.Random, count: int) -> list[tuple[datetime, dict[str, Any]]]:
    docs = []
    for _ in range(count):
        doc: dict[str, Any] = {}
        for name, choices in FIELDS.items():
            value = rng.choice(choices)
            if value == "absent":
                continue
            if "." in name:
                doc.setdefault("f", {})[name.split(".")[1]] = value
            else:
                doc[name] = value
        docs.append((T0 + SPAN * rng.random(), doc))
    return docs


def random_filter(rng: random.Random, depth: int = 0) -> Filter:
    name = rng.choice(list(FIELDS))
    kind = rng.choice(["eq", "in", "range", "exists", "not", "and", "or"] if depth < 2 else ["eq", "range"])
    values = [v for v in FIELDS[name] if v not in ("absent", None)]
    if kind == "eq":
        return Eq(name, rng.choice(values))
    if kind == "in":
        return In(name, tuple(rng.sample(values, min(2, len(values)))))
    if kind == "range":
        return Range(name, gte=rng.choice([None, 20.0, 200.0]), lt=rng.choice([None, 100.0, 500.0]))
    if kind == "exists":
        return Exists(name)
    if kind == "not":
        return Not(random_filter(rng, depth + 1))
    children = tuple(random_filter(rng, depth + 1) for _ in range(rng.randint(0, 2)))
    return And(children) if kind == "and" else Or(children)


def random_aggregate(rng: random.Random) -> Aggregate:
    numeric = rng.choice(["latency_ms", "status", "f.age"])
    anything = rng.choice(list(FIELDS))
    choices: list[Aggregate] = [
        Count(),
        CountWhere(random_filter(rng)),
        Percentiles(numeric, tuple(rng.sample([0.0, 50.0, 90.0, 99.0, 100.0], 2))),
        Stats(numeric),
        Cardinality(anything),
        Histogram(numeric, tuple(sorted(rng.sample([10.0, 20.0, 50.0, 200.0, 400.0], 3)))),
        Terms(anything, rng.randint(1, 3)),
        Missing(anything),
    ]
    return rng.choice(choices)


def random_queries(rng: random.Random, count: int) -> list[Query]:
    queries = []
    for i in range(count):
        length = rng.choice([timedelta(minutes=m) for m in (5, 10, 30, 60)])
        window = Window.ending_at(T0 + SPAN * rng.random() + length / 2, length)
        group_by = tuple(rng.sample(["service", "version", "f.age", "status"], rng.choice([0, 0, 1, 2])))
        aggregates = {f"a{j}": random_aggregate(rng) for j in range(rng.randint(1, 4))}
        where = rng.choice([And(()), random_filter(rng)])
        queries.append(Query(f"q{i}", window, aggregates, where, group_by))
    return queries


# --------------------------------------------------------------------------- the contract, in Python


def text(value: Any) -> str | None:
    """A field value as text, the way the store reads it (None for absent and null)."""
    if value is None or isinstance(value, dict):
        return None if value is None else json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def number(value: Any) -> float | None:
    try:
        return None if isinstance(value, bool) or value is None else float(value)
    except ValueError:
        return None


def field(doc: dict[str, Any], name: str) -> Any:
    current: Any = doc
    for part in name.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return current


def matches(flt: Filter, doc: dict[str, Any]) -> bool:
    if isinstance(flt, Eq | In):
        value = field(doc, flt.field)
        wanted = (flt.value,) if isinstance(flt, Eq) else flt.values
        return any(_equal(value, w) for w in wanted)
    if isinstance(flt, Range):
        n = number(field(doc, flt.field))
        bounds = [(flt.gte, n is not None and flt.gte is not None and n >= flt.gte)]
        bounds += [(flt.gt, n is not None and flt.gt is not None and n > flt.gt)]
        bounds += [(flt.lte, n is not None and flt.lte is not None and n <= flt.lte)]
        bounds += [(flt.lt, n is not None and flt.lt is not None and n < flt.lt)]
        return n is not None and all(ok for bound, ok in bounds if bound is not None)
    if isinstance(flt, Exists):
        return field(doc, flt.field) is not None
    if isinstance(flt, Not):
        return not matches(flt.filter, doc)
    if isinstance(flt, And):
        return all(matches(child, doc) for child in flt.filters)
    return any(matches(child, doc) for child in flt.filters)


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return value is wanted
    if isinstance(wanted, int | float):
        return number(value) == float(wanted)
    return text(value) == str(wanted)


def expected(
    query: Query, docs: list[tuple[datetime, dict[str, Any]]]
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    chosen = [d for ts, d in docs if query.window.start <= ts < query.window.end and matches(query.where, d)]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for doc in chosen:
        groups.setdefault(tuple(text(field(doc, n)) or "" for n in query.group_by), []).append(doc)
    if not query.group_by:
        groups = {(): chosen}
    return [
        (
            dict(zip(query.group_by, key, strict=True)),
            {n: aggregate(a, members) for n, a in query.aggregates.items()},
        )
        for key, members in sorted(groups.items())
    ]


def aggregate(agg: Aggregate, docs: list[dict[str, Any]]) -> Any:
    if isinstance(agg, Count):
        return len(docs)
    if isinstance(agg, CountWhere):
        return sum(matches(agg.filter, d) for d in docs)
    if isinstance(agg, Missing):
        return sum(field(d, agg.field) is None for d in docs)
    if isinstance(agg, Cardinality):
        return len({text(field(d, agg.field)) for d in docs} - {None})
    if isinstance(agg, Terms):
        counts = Counter(t for d in docs if (t := text(field(d, agg.field))) is not None)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: agg.size])
    values = [n for d in docs if (n := number(field(d, agg.field))) is not None]
    if isinstance(agg, Percentiles):
        return {q: float(np.percentile(values, q)) if values else None for q in agg.qs}
    if isinstance(agg, Stats):
        if not values:
            return {"avg": None, "min": None, "max": None, "sum": None, "count": 0}
        return {"avg": sum(values) / len(values), "min": min(values), "max": max(values), "sum": sum(values),
                "count": len(values)}  # fmt: skip
    buckets = [0] * (len(agg.edges) + 1)
    for value in values:
        buckets[bisect.bisect_right(agg.edges, value)] += 1
    return buckets


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(close(a[k], b[k]) for k in a)
    return a == b  # type: ignore[no-any-return]


def as_pairs(result: QueryResult) -> list[tuple[dict[str, str], dict[str, Any]]]:
    assert result.ok, result.error
    return [(dict(g.key), dict(g.values)) for g in result.groups]


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStore, list[Any]]]:
    docs = random_docs(random.Random(1), 600)
    store = EmbeddedStore(tmp_path_factory.mktemp("fusion") / "logs.duckdb")
    report = store.ingest_lines(json.dumps({"@timestamp": ts.isoformat(), **doc}) for ts, doc in docs)
    assert report.rows_stored == len(docs)
    yield store, docs
    store.close()


@pytest.mark.parametrize("seed", range(6))
def test_fused_equals_unfused_equals_the_contract(world: tuple[EmbeddedStore, list[Any]], seed: int) -> None:
    store, docs = world
    queries = random_queries(random.Random(seed), 40)
    fused = store.evaluate(queries)
    unfused = store.evaluate_unfused(queries)
    assert [r.query_id for r in fused] == [q.id for q in queries]
    for query, one, other in zip(queries, fused, unfused, strict=True):
        want = expected(query, docs)
        for got in (as_pairs(one), as_pairs(other)):
            assert [key for key, _ in got] == [key for key, _ in want], query
            for (_, values), (_, wanted) in zip(got, want, strict=True):
                assert close(values, wanted), (query, values, wanted)


@pytest.mark.parametrize("seed", range(3))
def test_one_bucket_asked_with_wider_windows_equals_the_contract(
    world: tuple[EmbeddedStore, list[Any]], seed: int
) -> None:
    """A steady tick's newest minute: every bucketed query asks the same one bucket (its branches
    then group by their other columns only) while other queries scan wider windows around it."""
    store, docs = world
    rng = random.Random(seed)
    start = T0 + timedelta(minutes=rng.randrange(int(SPAN / timedelta(minutes=1))))
    bucket = Window(start, start + timedelta(minutes=1))
    plain = random_queries(rng, 30)
    bucketed = [
        Query(f"{q.id}:b", bucket, q.aggregates, q.where, q.group_by, buckets=timedelta(minutes=1))
        for q in plain
    ]
    results = store.evaluate([*bucketed, *plain])
    for query, result in zip(bucketed, results, strict=False):
        counted = expected(Query("n", bucket, {"n": Count()}, query.where, query.group_by), docs)
        held = {tuple(key.values()) for key, values in counted if values["n"]}
        window = Query(query.id, bucket, query.aggregates, query.where, query.group_by)
        want = [(key, values) for key, values in expected(window, docs) if tuple(key.values()) in held]
        got = as_pairs(result)
        assert [key for key, _ in got] == [{**key, BUCKET: str(epoch_ms(start))} for key, _ in want], query
        for (_, values), (_, wanted) in zip(got, want, strict=True):
            assert close(values, wanted), (query, values, wanted)


def test_a_window_holding_every_row_read_answers_as_the_contract(
    world: tuple[EmbeddedStore, list[Any]],
) -> None:
    """Queries whose window holds every row the statement reads (their scope is then their
    ``where`` alone), beside one whose narrower window must still be tested per row."""
    store, docs = world
    whole = Window(T0, T0 + SPAN)
    aggregates: dict[str, Aggregate] = {
        "h": Histogram("latency_ms", (10.0, 30.25, 99.5)),
        "t": Terms("version", 3),
        "v1": CountWhere(Eq("version", "v1")),
        "m": Missing("f.age"),
    }
    queries = [
        Query("all", whole, aggregates),
        Query("errors", whole, aggregates, Range("status", gte=500), ("service",)),
        Query("late", Window(T0 + SPAN / 2, T0 + SPAN), aggregates, group_by=("service",)),
    ]
    for query, result in zip(queries, store.evaluate(queries), strict=True):
        got, want = as_pairs(result), expected(query, docs)
        assert [key for key, _ in got] == [key for key, _ in want], query.id
        for (_, values), (_, wanted) in zip(got, want, strict=True):
            assert close(values, wanted), (query.id, values, wanted)

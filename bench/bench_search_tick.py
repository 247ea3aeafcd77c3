"""Benchmark one scheduler tick of many rules on the search store, against a real osmem-server.

    .venv/bin/python bench/bench_search_tick.py [--docs 100000,1000000 --rules 500 --span 24h]

For each document count: starts osmem-server (the OpenSearch-compatible test server) on
127.0.0.1, bulk-loads synthetic ML-API request logs spread over ``--span`` into an index mapped
the way ``watcher ingest`` maps it, then evaluates ``--rules`` rule-shaped queries on one source
in one tick, twice (cold: the field mapping is fetched; warm: it is cached) and for two workloads:

* ``mixed``   -- realistic rules (5xx ratio per model version, p99 latency, traffic counts, stats,
  cardinality, drift histograms and terms) over 1m..1h windows; many share window, filter and
  grouping and are fused into one search.
* ``unfused`` -- every rule has its own filter (per-client traffic): one search per rule, so the
  cost of ``_msearch`` batching alone shows.

With ``--partials``: 10 rules of the five shipped kinds (ratio, percentile, flatline, drift,
validity), each with its own filter, 5-minute windows every minute, evaluated ``--ticks`` minutes
in a row by re-reading every window and through per-bucket partials (``watcher.store.partials``),
interleaved tick by tick: prints osmem-server's CPU (``/proc/<pid>/stat``) per rule-tick, watcher's
own CPU per evaluation, and how many answers differ.

Prints, per run: HTTP round trips per rule, response bytes per rule (bytes received from the
server, uncompressed), tick wall time, searches sent, query errors; then the peak RSS of this
process and of the server. Response bytes do not depend on the document count (compare the
100k and 1M lines); wall time does, because the server aggregates more documents per window.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import resource
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from opensearchpy.connection import Urllib3HttpConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osmem_server import OsmemServer

from watcher.baseline import save_profile
from watcher.baseline_store import profile_from_store
from watcher.config import Route, SearchSource
from watcher.duration import parse_duration
from watcher.engine import Engine
from watcher.incidents.model import State
from watcher.incidents.state import StateStore
from watcher.process import memory
from watcher.process.daemon import live_partials
from watcher.query import (
    Aggregate,
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Stats,
    Terms,
    Values,
    Window,
)
from watcher.query_filters import Eq, Filter, In, Range
from watcher.rules.models import Rule
from watcher.store.bulk import new_index_mappings
from watcher.store.multiset import Sorted
from watcher.store.partials import Partials
from watcher.store.search import SearchStore

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
INDEX = "ml-api-bench"
SERVICES = ["prediction-api", "ranking-api", "embedding-api"]
ENDPOINTS = ["/v1/predict", "/v1/batch", "/v1/explain"]
VERSIONS = ["v1", "v2", "v3", "v4"]
COUNTRIES = ["FR", "US", "DE", "JP", "BR", "IN"]
CLIENTS = 40
WINDOWS = [timedelta(minutes=m) for m in (1, 5, 5, 15, 60)]
BULK_DOCS = 10_000


class CountingConnection(Urllib3HttpConnection):
    """opensearch-py connection that counts the bytes of every response body."""

    received = 0

    def perform_request(self, *args: Any, **kwargs: Any) -> Any:
        status, headers, data = super().perform_request(*args, **kwargs)
        CountingConnection.received += len(data.encode() if isinstance(data, str) else data or b"")
        return status, headers, data


# --------------------------------------------------------------------------- data


def documents(count: int, span: timedelta, seed: int) -> Iterator[bytes]:
    """``_bulk`` bodies of synthetic request logs ending at NOW, oldest first."""
    rng = np.random.default_rng(seed)
    start_ms = int((NOW - span).timestamp() * 1000)
    for first in range(0, count, BULK_DOCS):
        n = min(BULK_DOCS, count - first)
        offsets = np.sort(rng.integers(0, int(span.total_seconds() * 1000), n))
        version = rng.integers(0, len(VERSIONS), n)
        draw = rng.random(n)
        status = np.where(draw < np.where(version == 2, 0.08, 0.02), 503, np.where(draw < 0.1, 429, 200))
        latency = np.round(rng.lognormal(np.log(80), 0.45, n), 1)
        lines = []
        for i in range(n):
            doc = {
                "@timestamp": _iso(start_ms + int(offsets[i])),
                "service": SERVICES[i % 3],
                "endpoint": ENDPOINTS[int(draw[i] * 1000) % 3],
                "model_version": VERSIONS[int(version[i])],
                "status": int(status[i]),
                "latency_ms": float(latency[i]),
                "client_id": f"c-{int(draw[i] * 7919) % CLIENTS}",
                "features": {
                    "age": 18 + int(draw[i] * 997) % 70,
                    "country": COUNTRIES[int(draw[i] * 31) % 6],
                },
            }
            lines.append('{"index":{}}\n' + json.dumps(doc, separators=(",", ":")) + "\n")
        yield "".join(lines).encode()


def _iso(millis: int) -> str:
    return (
        datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def load(url: str, count: int, span: timedelta, seed: int) -> float:
    """Create the index and bulk-load ``count`` documents; return the seconds it took."""
    _http(url, "PUT", f"/{INDEX}", json.dumps({"mappings": new_index_mappings("@timestamp")}).encode())
    started = time.perf_counter()
    for body in documents(count, span, seed):
        answer = _http(url, "POST", f"/{INDEX}/_bulk", body, "application/x-ndjson")
        if answer.get("errors"):
            raise RuntimeError("bulk load rejected documents")
    _http(url, "POST", f"/{INDEX}/_refresh", b"{}")
    return time.perf_counter() - started


def _http(url: str, method: str, path: str, body: bytes, kind: str = "application/json") -> dict[str, Any]:
    request = urllib.request.Request(url + path, data=body, method=method, headers={"Content-Type": kind})
    with urllib.request.urlopen(request, timeout=600) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


# --------------------------------------------------------------------------- rules


def mixed_rules(count: int, seed: int, at: datetime) -> list[Query]:
    """Rule-shaped queries as the detectors emit them, with a realistic spread of shapes."""
    rng = random.Random(seed)
    shapes = [_ratio_5xx, _p99, _traffic, _latency_stats, _clients, _drift, _countries]
    queries = []
    for i in range(count):
        aggregates, where, group_by = shapes[i % len(shapes)](rng)
        window = Window.ending_at(at - timedelta(seconds=30), rng.choice(WINDOWS))
        queries.append(Query(f"rule-{i}", window, aggregates, where, group_by))
    return queries


def unfused_rules(count: int, at: datetime) -> list[Query]:
    """One search per rule: per-client traffic with a distinct status bound each."""
    window = Window.ending_at(at - timedelta(seconds=30), timedelta(minutes=5))
    return [
        Query(
            f"client-{i}",
            window,
            {"total": Count(), "errors": CountWhere(Range("status", gte=500))},
            Eq("client_id", f"c-{i % CLIENTS}") if i < CLIENTS else Range("latency_ms", gte=float(i)),
        )
        for i in range(count)
    ]


Shape = tuple[dict[str, Aggregate], Filter, tuple[str, ...]]


def _service(rng: random.Random) -> Filter:
    return Eq("service", rng.choice(SERVICES))


def _ratio_5xx(rng: random.Random) -> Shape:
    return (
        {"count": Count(), "value": CountWhere(Range("status", gte=500))},
        _service(rng),
        ("model_version",),
    )


def _p99(rng: random.Random) -> Shape:
    group_by = rng.choice([(), ("endpoint",), ("model_version",)])
    return {"count": Count(), "value": Percentiles("latency_ms", (99.0,))}, _service(rng), group_by


def _traffic(rng: random.Random) -> Shape:
    where = rng.choice([_service(rng), In("endpoint", ("/v1/predict", "/v1/batch")), Eq("status", 429)])
    return {"count": Count()}, where, rng.choice([(), ("endpoint",)])


def _latency_stats(rng: random.Random) -> Shape:
    return {"count": Count(), "value": Stats("latency_ms")}, _service(rng), ()


def _clients(rng: random.Random) -> Shape:
    return {"count": Count(), "value": Cardinality("client_id")}, _service(rng), ()


def _drift(rng: random.Random) -> Shape:
    edges = tuple(float(e) for e in range(20, 90, 5))
    aggregates: dict[str, Aggregate] = {
        "count": Count(),
        "age": Histogram("features.age", edges),
        "age_missing": Missing("features.age"),
    }
    return aggregates, Eq("model_version", rng.choice(VERSIONS)), ()


def _countries(rng: random.Random) -> Shape:
    return {"count": Count(), "country": Terms("features.country", 10)}, _service(rng), ()


# --------------------------------------------------------------------------- the tick


@dataclass
class TickFigures:
    round_trips: int
    received: int
    seconds: float
    searches: int
    errors: int


def tick(store: SearchStore, queries: list[Query]) -> TickFigures:
    trips, received = store.round_trips, CountingConnection.received
    started = time.perf_counter()
    results = store.evaluate(queries)
    seconds = time.perf_counter() - started
    searches = len({(q.window, q.where, q.group_by) for q in queries})
    errors = [r.error for r in results if not r.ok]
    if errors:
        print(f"    first error: {errors[0]}")
    return TickFigures(
        store.round_trips - trips, CountingConnection.received - received, seconds, searches, len(errors)
    )


# --------------------------------------------------------------------------- partials


EVERY = timedelta(minutes=1)
KINDS = ("ratio", "percentile", "flatline", "drift", "validity")


def kind_rules(at: datetime) -> list[Query]:
    """10 rules of the five shipped kinds (as their detectors ask), each with its own filter:
    5-minute windows ending 30s before ``at``, evaluated every minute."""
    window = Window.ending_at(at - timedelta(seconds=30), timedelta(minutes=5))
    return [Query(name, window, aggregates, where, group_by, every=EVERY)
            for name, aggregates, where, group_by in _kind_shapes()]  # fmt: skip


@functools.cache
def _kind_shapes() -> tuple[tuple[str, dict[str, Aggregate], Filter, tuple[str, ...]], ...]:
    """Each rule's name, aggregates, filter and grouping, made once: a detector asks with its rule's
    own filter and aggregates at every tick (the partials know a query's shape by them)."""
    edges = tuple(float(e) for e in range(20, 90, 5))
    shapes = []
    for i in range(10):
        where: Filter = Eq("service", SERVICES[i % 3]) if i < 5 else Eq("model_version", VERSIONS[i % 4])
        kind = KINDS[i % 5]
        aggregates: dict[str, Aggregate] = {"count": Count()}
        if kind == "ratio":
            aggregates["value"] = CountWhere(Range("status", gte=500))
        elif kind == "percentile":
            aggregates["value"] = Percentiles("latency_ms", (99.0,))
        elif kind == "drift":
            aggregates |= {"age": Histogram("features.age", edges), "age/missing": Missing("features.age"),
                           "country": Terms("features.country", 11)}  # fmt: skip
        elif kind == "validity":
            unseen = CountWhere(In("features.country", ("FR", "US", "DE")))
            aggregates |= {"missing": Missing("features.age"), "unseen": unseen,
                           "terms": Terms("features.country", 8)}  # fmt: skip
        group_by = ("model_version",) if kind == "ratio" else ()
        shapes.append((f"{kind}-{i}", aggregates, where, group_by))
    return tuple(shapes)


def server_cpu(pid: int) -> float:
    """The server process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def partials_run(server: OsmemServer, source: SearchSource, ticks: int) -> None:
    """Both paths minute by minute, interleaved tick by tick: server CPU and watcher CPU per
    rule-tick, and whether the answers agree."""
    reread = SearchStore(source)
    partial = Partials(SearchStore(source))
    start = NOW - timedelta(hours=2)
    partial.evaluate(kind_rules(start))  # the first evaluation reads every bucket of its windows
    reread.evaluate(kind_rules(start))
    memory.freeze()  # as the daemon does after start-up
    spent = {"reread": [0.0, 0.0], "partials": [0.0, 0.0]}
    unequal, estimate = 0, 0.0
    for k in range(1, ticks + 1):
        queries = kind_rules(start + k * EVERY)
        answers = {}
        for name, store in (("reread", reread), ("partials", partial)):
            cpu, own = server_cpu(server.pid), time.process_time()
            answers[name] = store.evaluate(queries)
            spent[name][1] += time.process_time() - own  # first: reading the server's CPU costs ours
            spent[name][0] += server_cpu(server.pid) - cpu
        exact = _exact_percentiles(reread, queries, answers["reread"])
        unequal += sum(not _agree(a, b) for a, b in zip(answers["partials"], exact, strict=True))
        estimate = max(estimate, _largest_gap(answers["reread"], exact))
    evaluations = ticks * len(queries)
    for name, (server_s, own_s) in spent.items():
        print(f"  {name:<9} server CPU {server_s / evaluations * 1000:.2f} ms per rule-tick, "
              f"watcher CPU {own_s / evaluations * 1000:.2f} ms per evaluation")  # fmt: skip
    ratio = spent["reread"][0] / max(spent["partials"][0], 1e-9)
    print(f"  server CPU {ratio:.1f}x lower with partials; {unequal} of {evaluations} answers differ "
          f"(percentiles against the exact value: the server's t-digest estimate was up to "
          f"{estimate:.1%} off)")  # fmt: skip
    reread.close()
    partial.close()


BASELINE = Path(__file__).resolve().parents[1] / "rules" / "baselines" / "demo-features.json"


def kind_rule_specs(baseline: Path) -> list[Rule]:
    """The same 10 rules as ``kind_rules``, as rule files say them, for the engine; drift and
    validity compare with the profile at ``baseline``."""
    rules = []
    for i in range(10):
        where = {"service": SERVICES[i % 3]} if i < 5 else {"model_version": VERSIONS[i % 4]}
        kind = KINDS[i % 5]
        spec: dict[str, Any] = {"name": f"{kind}-{i}", "source": "bench", "every": "1m", "window": "5m",
                                "delay": "30s", "where": where}  # fmt: skip
        if kind == "ratio":
            spec |= {"group_by": ["model_version"], "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
                     "threshold": {"above": 0.05}}  # fmt: skip
        elif kind == "percentile":
            spec |= {"signal": {"percentile": {"field": "latency_ms", "q": 99}}, "threshold": {"above": 800}}
        elif kind == "flatline":
            spec |= {"flatline": {"below": 10}}
        elif kind == "drift":
            spec |= {"drift": {"baseline": str(baseline), "features": ["features.age", "features.country"],
                               "min_samples": 10}}  # fmt: skip
        else:
            spec |= {
                "validity": {"baseline": str(baseline), "features": ["features.country", "features.age"]}
            }
        rules.append(Rule.model_validate(spec))
    return rules


def own_baseline(source: SearchSource, workdir: Path) -> Path:
    """A profile of the bench's own features over a normal day before the ticks (as ``watcher
    baseline build --source`` writes it), so drift and validity judge the data they watch."""
    store = SearchStore(source)
    window = Window(NOW - timedelta(hours=24), NOW - timedelta(hours=12))
    profile = profile_from_store(
        store,
        source="bench",
        window=window,
        features=["features.age", "features.country"],
        built_at=NOW,
    )
    store.close()
    path = workdir / "bench-features.json"
    save_profile(profile, path)
    return path


def live_run(server: OsmemServer, source: SearchSource, ticks: int) -> None:
    """The daemon's tick (``Engine.tick``: plan, store, detectors, incidents, state commit) of the
    10 rules, minute by minute, reading the newest minute (``live_partials``, as ``watcher run``) and
    re-reading every window, interleaved tick by tick: server CPU per rule-tick, watcher's own CPU
    per evaluation (``time.process_time``), and whether the engines' findings agree. Twice: drift
    and validity against a profile of the bench's own data (a normal day: only the one broken model
    version alerts), then against the demo's profile (its ages and countries differ from the
    bench's, so those four rules fire all along and every tick writes their incidents)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    for label, baseline in (("own profile", own_baseline(source, workdir)), ("demo profile", BASELINE)):
        print(f"  drift and validity against the {label}:")
        _live_ticks(server, source, kind_rule_specs(baseline), workdir / label.replace(" ", "-"), ticks)


def _live_ticks(
    server: OsmemServer, source: SearchSource, rules: list[Rule], workdir: Path, ticks: int
) -> None:
    engines = {}
    workdir.mkdir()
    for name in ("reread", "partials"):
        state = StateStore(workdir / f"{name}.sqlite")
        store = SearchStore(source)
        policy = live_partials if name == "partials" else False
        engines[name] = Engine(rules, {"bench": store}, state, Route(receiver="none"), partials=policy)
    start = NOW - timedelta(hours=2)
    for engine in engines.values():
        engine.tick(start)  # the first tick: the mapping, the known groups, every bucket of the windows
    memory.freeze()  # as the daemon does after start-up
    spent = {name: [0.0, 0.0] for name in engines}
    evaluations = dict.fromkeys(engines, 0)
    for k in range(1, ticks + 1):
        for name, engine in engines.items():
            cpu, own = server_cpu(server.pid), time.process_time()
            report = engine.tick(start + k * EVERY)
            memory.release()  # as the daemon's tick does
            spent[name][1] += time.process_time() - own  # first: reading the server's CPU costs ours
            spent[name][0] += server_cpu(server.pid) - cpu
            evaluations[name] += report.evaluations
            if report.errors:
                print(f"    {name} errors: {report.errors}")
    for name, (server_s, own_s) in spent.items():
        count = max(evaluations[name], 1)
        firing = sorted({i.rule for i in engines[name].state.incidents(states=(State.FIRING,))})
        print(f"    {name:<9} server CPU {server_s / count * 1000:.2f} ms per rule-tick, "
              f"watcher CPU {own_s / count * 1000:.2f} ms per evaluation ({count} evaluations); "
              f"open at the end: {', '.join(firing) or 'none'}")  # fmt: skip
    ratio = spent["reread"][0] / max(spent["partials"][0], 1e-9)
    print(f"    server CPU {ratio:.1f}x lower reading the newest minute")
    for engine in engines.values():
        engine.state.close()
        for store in engine.stores.values():
            store.close()


def _exact_percentiles(store: SearchStore, queries: list[Query], answers: list[Any]) -> list[Any]:
    """``answers`` with each percentile replaced by the exact one (DuckDB's ``quantile_cont`` over
    every value of the window, asked once more, outside the measured CPU)."""
    out = []
    for query, answer in zip(queries, answers, strict=True):
        asked = query.aggregates.get("value")
        if isinstance(asked, Percentiles) and answer.ok:
            every = Values(asked.field, numeric=True, limit=100_000)
            (found,) = store.evaluate(
                [Query(query.id, query.window, {"v": every}, query.where, query.group_by)]
            )
            values = {tuple(group.key.items()): group.values["v"] or {} for group in found.groups}
            groups = []
            for group in answer.groups:
                counted = Sorted.of(values.get(tuple(group.key.items()), {}))
                exact = {q: counted.quantile(q / 100) for q in asked.qs}
                groups.append(replace(group, values={**group.values, "value": exact}))
            answer = replace(answer, groups=groups)
        out.append(answer)
    return out


def _largest_gap(estimated: list[Any], exact: list[Any]) -> float:
    """The largest relative gap of a percentile the server estimated from the exact one."""
    gaps = [0.0]
    for one, other in zip(estimated, exact, strict=True):
        for mine, theirs in zip(one.groups, other.groups, strict=True):
            if isinstance(mine.values.get("value"), dict):
                for q, value in theirs.values["value"].items():
                    got = mine.values["value"].get(q)
                    if value and got is not None:
                        gaps.append(abs(got - value) / abs(value))
    return max(gaps)


def _agree(one: Any, other: Any) -> bool:
    """Equal answers, floats to 1e-9 (percentiles against the exact value)."""
    if not (one.ok and other.ok) or len(one.groups) != len(other.groups):
        return False
    for mine, theirs in zip(one.groups, other.groups, strict=True):
        if mine.key != theirs.key:
            return False
        for name, value in theirs.values.items():
            if not _close(mine.values[name], value, 1e-9):
                return False
    return True


def _close(one: Any, other: Any, rel: float) -> bool:
    if isinstance(one, dict) and isinstance(other, dict):
        return one.keys() == other.keys() and all(_close(one[k], other[k], rel) for k in one)
    if isinstance(one, float) or isinstance(other, float):
        return one is not None and other is not None and abs(one - other) <= rel * max(abs(other), 1e-12)
    return bool(one == other)


def report(label: str, rules: int, figures: TickFigures) -> None:
    print(
        f"  {label:<16} round trips/rule {figures.round_trips / rules:.4f} ({figures.round_trips})   "
        f"bytes/rule {figures.received / rules:,.0f}   wall {figures.seconds:.2f}s   "
        f"searches {figures.searches}   errors {figures.errors}"
    )


def run_size(docs: int, args: argparse.Namespace) -> int:
    """Load ``docs`` documents into a fresh server and run the ticks; return the server's peak RSS in kB."""
    server = OsmemServer.start(japanese=False)
    try:
        seconds = load(server.url, docs, parse_duration(args.span), args.seed)
        print(f"{docs:,} documents over {args.span}: bulk load {seconds:.1f}s ({docs / seconds:,.0f} docs/s)")
        source = SearchSource.model_validate(
            {
                "store": "opensearch",
                "hosts": [server.url],
                "index": INDEX,
                "msearch_max": args.msearch_max,
                "timeout": args.timeout,
            }
        )
        if args.partials:
            print(f"10 rules of the five kinds, 5m windows every minute, {args.ticks} ticks; the store:")
            partials_run(server, source, args.ticks)
            print("the daemon's tick (Engine.tick) of the same rules:")
            live_run(server, source, args.ticks)
            return _peak_rss_kb(server.pid)
        for name, queries in (
            ("mixed", mixed_rules(args.rules, args.seed, NOW)),
            ("unfused", unfused_rules(args.rules, NOW)),
        ):
            store = SearchStore(source, client_options={"connection_class": CountingConnection})
            report(f"{name} cold", args.rules, tick(store, queries))
            report(f"{name} warm", args.rules, tick(store, queries))
            store.close()
        return _peak_rss_kb(server.pid)
    finally:
        server.close()


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", default="100000,1000000", help="comma-separated document counts")
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--span", default="24h", help="time covered by the generated logs (default 24h)")
    parser.add_argument("--msearch-max", type=int, default=100, help="searches per _msearch request")
    parser.add_argument(
        "--timeout",
        default="10m",
        help="request timeout (default 10m: osmem-server aggregates far slower than Elasticsearch)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--partials", action="store_true", help="per-bucket partials against re-reading, minute by minute"
    )
    parser.add_argument("--ticks", type=int, default=30, help="minutes evaluated with --partials")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="    log: %(message)s")
    print(f"{args.rules} rules on one source, one tick; msearch_max {args.msearch_max}; client opensearch-py")
    for docs in (int(part) for part in args.docs.split(",")):
        server_rss = run_size(docs, args)
        print(f"  osmem-server peak RSS {server_rss / 1024:,.0f} MB")
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()

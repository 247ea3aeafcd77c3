"""Benchmark ``new_value`` with a 30-day lookback: answered in the store against fetching the terms.

    .venv/bin/python bench/bench_new_value.py [--docs 1000000 --values 20000 --runs 3]

Generates ``--docs`` request logs over 30 days and 5 minutes, whose ``client_id`` takes
``--values`` distinct values (a few hundred frequent, a long tail of rare ones), plus three clients
that first appear in the last 5 minutes. Then, on the embedded store (DuckDB) and on osmem-server
(the OpenSearch-compatible test server), evaluates the question "which client_id values in the last
5 minutes did the 30 days before never see?" two ways, ``--runs`` times each, interleaved:

* ``store``  -- what the ``new_value`` detector asks (``max_values`` raised above ``--values``):
  one ``FirstSeen`` aggregate over the lookback and the window; the store buckets every value and
  sends back only the new ones (DuckDB: an inner GROUP BY; search: ``terms`` + ``bucket_selector``).
* ``client`` -- fetching the terms and comparing them here, as a tool without the pushed-down
  aggregate must (ElastAlert 2's ``new_term`` keeps them in memory between runs instead, after
  fetching them all at start): every value of the lookback with its count (``Values``), then those
  of the window, in one batch.

Prints per store and way: the median wall time of an evaluation, the response bytes (osmem-server:
bytes received over HTTP, uncompressed; DuckDB: the values handed back), the new values found
(both ways must agree), then the peak RSS of this process and of the server.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search_tick import CountingConnection, _http, _peak_rss_kb
from osmem_server import OsmemServer

from watcher.config import SearchSource
from watcher.query import Query, Values, Window
from watcher.query_documents import FirstSeen, Seen
from watcher.store.base import LogStore
from watcher.store.bulk import new_index_mappings
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(minutes=5), NOW)
LOOKBACK = timedelta(days=30)
REACH = Window(WINDOW.start - LOOKBACK, WINDOW.end)
INDEX = "new-value-bench"
FIELD = "client_id"
NEW = ("c-new-1", "c-new-2", "c-new-3")
BULK_DOCS = 20_000


def documents(count: int, values: int, seed: int) -> Iterator[list[str]]:
    """Batches of JSON log lines over the 30 days and the window, oldest first; the three new
    clients only in the window's last minutes."""
    rng = np.random.default_rng(seed)
    span_ms = int((REACH.end - REACH.start).total_seconds() * 1000)
    start_ms = int(REACH.start.timestamp() * 1000)
    for first in range(0, count, BULK_DOCS):
        n = min(BULK_DOCS, count - first)
        offsets = np.sort(rng.integers(0, span_ms - 5 * 60_000, n))  # the window holds only the new ones
        clients = np.minimum(rng.zipf(1.3, n), values) - 1
        status = np.where(rng.random(n) < 0.03, 503, 200)
        yield [
            json.dumps(
                {
                    "@timestamp": _iso(start_ms + int(offsets[i])),
                    "service": "api",
                    FIELD: f"c-{int(clients[i])}",
                    "status": int(status[i]),
                },
                separators=(",", ":"),
            )
            for i in range(n)
        ]
    window_ms = int(WINDOW.start.timestamp() * 1000)
    old = [f"c-{k}" for k in range(20)]
    yield [
        json.dumps({"@timestamp": _iso(window_ms + k * 1000), "service": "api", FIELD: client, "status": 200})
        for k, client in enumerate([*old, *NEW, *old, NEW[0]])
    ]


def _iso(millis: int) -> str:
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- the two ways


def store_way(store: LogStore, limit: int) -> tuple[set[str], int]:
    """The ``new_value`` detector's query (``max_values: limit``): the new values, and how many
    values came back."""
    (result,) = store.evaluate([Query("new", REACH, {"new": FirstSeen((FIELD,), WINDOW.start, limit)})])
    if result.error:
        raise RuntimeError(result.error)
    found: Any = result.groups[0].values["new"] if result.groups else ()
    if not isinstance(found, tuple):
        raise RuntimeError("more distinct values than max_values")
    return {seen.value[0] for seen in found if isinstance(seen, Seen)}, len(found)


def client_way(store: LogStore, limit: int) -> tuple[set[str], int]:
    """Every value of the lookback and of the window, compared here."""
    lookback = Window(REACH.start, WINDOW.start)
    queries = [
        Query("lookback", lookback, {"values": Values(FIELD, limit=limit)}),
        Query("window", WINDOW, {"values": Values(FIELD, limit=limit)}),
    ]
    known, recent = (_values(result) for result in store.evaluate(queries))
    return set(recent) - set(known), len(known) + len(recent)


def _values(result: Any) -> dict[Any, int]:
    if result.error:
        raise RuntimeError(result.error)
    values = result.groups[0].values["values"] if result.groups else {}
    if values is None:
        raise RuntimeError("more distinct values than the limit")
    assert isinstance(values, dict)
    return values


def measure(name: str, ways: dict[str, Callable[[], tuple[set[str], int]]], runs: int,
            received: Callable[[], int] | None) -> None:  # fmt: skip
    """Run each way ``runs`` times, interleaved; print the median time, bytes or values, and the answer."""
    for run in ways.values():
        run()  # warm: the first read of a field fills its column (embedded), fetches its mapping (search)
    times: dict[str, list[float]] = {way: [] for way in ways}
    sizes: dict[str, int] = {}
    answers: dict[str, set[str]] = {}
    for _ in range(runs):
        for way, run in ways.items():
            before = received() if received else 0
            started = time.perf_counter()
            answers[way], count = run()
            times[way].append(time.perf_counter() - started)
            sizes[way] = received() - before if received else count
    unit = "response bytes" if received else "values returned"
    for way in ways:
        print(
            f"  {name:<8} {way:<7} median {statistics.median(times[way]) * 1000:8.1f} ms   "
            f"{unit} {sizes[way]:>10,}   new: {', '.join(sorted(answers[way]))}"
        )
    if len({frozenset(answer) for answer in answers.values()}) != 1:
        raise SystemExit("the two ways disagree")


# --------------------------------------------------------------------------- the stores


def embedded(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddedStore(Path(folder) / "logs.duckdb")
        started = time.perf_counter()
        for batch in documents(args.docs, args.values, args.seed):
            store.ingest_lines(batch, now=NOW)
        print(f"  embedded: {args.docs:,} documents ingested in {time.perf_counter() - started:.1f}s")
        limit = args.values + 10
        ways = {"store": lambda: store_way(store, limit), "client": lambda: client_way(store, limit)}
        measure("embedded", ways, args.runs, None)
        store.close()


def search(args: argparse.Namespace) -> None:
    server = OsmemServer.start(japanese=False)
    try:
        mappings = {"mappings": new_index_mappings("@timestamp")}
        _http(server.url, "PUT", f"/{INDEX}", json.dumps(mappings).encode())
        started = time.perf_counter()
        for batch in documents(args.docs, args.values, args.seed):
            body = "".join('{"index":{}}\n' + line + "\n" for line in batch).encode()
            if _http(server.url, "POST", f"/{INDEX}/_bulk", body, "application/x-ndjson").get("errors"):
                raise RuntimeError("bulk load rejected documents")
        _http(server.url, "POST", f"/{INDEX}/_refresh", b"{}")
        print(f"  osmem: {args.docs:,} documents loaded in {time.perf_counter() - started:.1f}s")
        source = SearchSource.model_validate(
            {"store": "opensearch", "hosts": [server.url], "index": INDEX, "timeout": "10m"}
        )
        store = SearchStore(source, client_options={"connection_class": CountingConnection})
        limit = args.values + 10
        ways = {"store": lambda: store_way(store, limit), "client": lambda: client_way(store, limit)}
        measure("osmem", ways, args.runs, lambda: CountingConnection.received)
        store.close()
        print(f"  osmem-server peak RSS {_peak_rss_kb(server.pid) / 1024:,.0f} MB")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--values", type=int, default=20_000, help="distinct client_id values at most")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stores", default="embedded,search")
    args = parser.parse_args()
    print(f"new_value over {FIELD}: 30-day lookback, 5-minute window, {args.docs:,} documents")
    if "embedded" in args.stores:
        embedded(args)
    if "search" in args.stores:
        search(args)
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()

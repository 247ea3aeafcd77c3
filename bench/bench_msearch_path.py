"""Benchmark watcher's own CPU for one tick's ``_msearch``, side by side: through the client's API,
through watcher's backend (``search_wire``'s short path when it applies) and bare ``http.client``.

    .venv/bin/python bench/bench_msearch_path.py [--docs 100000 --requests 40 --rounds 2]

Starts osmem-server on 127.0.0.1, loads the search tick bench's data, runs three ticks of the
bench's 10 partials rules (as ``bench_search_tick.py --partials`` does) and keeps the last
``_msearch`` body. Then sends that same body ``--requests`` times per way and client, in
``--rounds`` rounds (the ways taking turns within each), and prints this process's CPU (user +
system) per request, each round's and the median: the server's work is in its own process, so the
figures are the client side only. On a shared host, take the medians of several rounds.
"""

from __future__ import annotations

import argparse
import http.client
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_search_tick import BASELINE, EVERY, INDEX, NOW, kind_rule_specs, load
from osmem_server import OsmemServer

from tests.store.conftest import PlainJsonNode
from watcher.config import Route, SearchSource
from watcher.engine import Engine
from watcher.incidents.state import StateStore
from watcher.process.daemon import live_partials
from watcher.store.search import SearchStore
from watcher.store.search_client import read_json

Send = Callable[[], Any]


def tick_body(url: str) -> tuple[str, bytes, str]:
    """The last ``_msearch`` (index, body, filter_path) of three ticks of the partials rules."""
    source = SearchSource.model_validate(
        {"store": "opensearch", "hosts": [url], "index": INDEX, "msearch_max": 100, "timeout": "10m"}
    )
    store = SearchStore(source)
    sent: list[tuple[str, bytes, str]] = []
    backend = store._backend
    original = backend.msearch

    def record(index: str, lines: bytes, filter_path: str) -> Any:
        sent.append((index, lines, filter_path))
        return original(index, lines, filter_path)

    backend.msearch = record  # type: ignore[method-assign]
    state = StateStore(Path(tempfile.mkdtemp(prefix="msearch-")) / "state.sqlite")
    engine = Engine(
        kind_rule_specs(BASELINE), {"bench": store}, state, Route(receiver="none"), partials=live_partials
    )
    start = NOW - timedelta(hours=6)
    for k in range(3):
        engine.tick(start + k * EVERY)
    store.close()
    return sent[-1]


def ways(url: str, index: str, lines: bytes, filter_path: str) -> dict[str, Send]:
    stores = {
        client: SearchStore(
            SearchSource.model_validate(
                {"store": client, "hosts": [url], "index": index, "timeout": "10m", "max_retries": 0}
            ),
            client_options={"node_class": PlainJsonNode} if client == "elasticsearch" else {},
        )
        for client in ("opensearch", "elasticsearch")
    }
    opensearch = stores["opensearch"]._backend.client  # type: ignore[attr-defined]
    elasticsearch = stores["elasticsearch"]._backend.client  # type: ignore[attr-defined]
    host = url.split("//", 1)[1]
    bare = http.client.HTTPConnection(host)
    target = f"/{quote(index, safe=',*')}/_msearch?{urlencode({'filter_path': filter_path})}"

    def by_http_client() -> Any:
        bare.request("POST", target, body=lines, headers={"content-type": "application/x-ndjson"})
        return read_json(bare.getresponse().read())

    return {
        "opensearch-py API": lambda: dict(
            opensearch.msearch(body=lines, index=index, params={"filter_path": filter_path})
        ),
        "opensearch watcher": lambda: stores["opensearch"]._backend.msearch(index, lines, filter_path),
        "elasticsearch-py API": lambda: dict(
            elasticsearch.msearch(index=index, searches=lines, filter_path=filter_path).body
        ),
        "elasticsearch watcher": lambda: stores["elasticsearch"]._backend.msearch(index, lines, filter_path),
        "bare http.client": by_http_client,
    }


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server = OsmemServer.start(japanese=False)
    try:
        load(server.url, args.docs, timedelta(hours=24), 7)
        index, lines, filter_path = tick_body(server.url)
        sends = ways(server.url, index, lines, filter_path)
        answers = {name: send() for name, send in sends.items()}  # warm: connections, mapping
        assert all(answer == answers["bare http.client"] for answer in answers.values()), "answers differ"
        searches = lines.count(b"\n") // 2
        print(f"_msearch body {len(lines)} B, {searches} searches; {args.docs} docs")
        spent: dict[str, list[float]] = {name: [] for name in sends}
        for round_ in range(1, args.rounds + 1):
            for name, send in sends.items():
                started, wall = cpu(), time.perf_counter()
                for _ in range(args.requests):
                    send()
                spent[name].append((cpu() - started) / args.requests * 1000)
                per = (time.perf_counter() - wall) / args.requests * 1000
                print(
                    f"  round {round_} {name:<22} CPU {spent[name][-1]:.3f} ms/request  (wall {per:.1f} ms)"
                )
        for name, figures in spent.items():
            print(f"  median {name:<22} CPU {statistics.median(figures):.3f} ms/request")
    finally:
        server.close()
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()

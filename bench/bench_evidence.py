"""Benchmark what evidence (sample documents in alerts) costs a tick, on osmem-server and DuckDB.

    .venv/bin/python bench/bench_evidence.py [--docs 200000 --rules 100 --span 2h --repeat 3]

Loads the same synthetic ML-API request logs (``bench_search_tick``'s generator: model version v3
fails 8 % of requests, the others 2 %) into an osmem-server index and an embedded DuckDB store,
then runs the real engine's tick over ``--rules`` rules with each evidence setting, interleaved
run by run on fresh state: 5xx ratio per model version (one group of four fires), p99 latency per
endpoint, 429 counts, over 1m..15m windows. Prints per setting: HTTP requests per tick and
response bytes per rule on the search store (bytes received, uncompressed), the tick's wall time
on both stores (median of ``--repeat``), and the documents the firing incidents keep.

Settings: ``off`` (``Engine(evidence=False)``), ``on`` (the default: 3 whole documents), ``fields``
(``evidence: {fields: [status, model_version, endpoint, latency_ms]}``).

One run here (2 shared cores, load ~14), ``--docs 200000 --rules 100 --repeat 3``::

    evidence off     requests/tick 1   bytes/rule 29 (1.00x)   search tick 3.03s   embedded tick 0.207s
    evidence on      requests/tick 1   bytes/rule 264 (9.06x)  search tick 17.86s  embedded tick 0.401s
    evidence fields  requests/tick 1   bytes/rule 178 (6.14x)  search tick 18.12s  embedded tick 0.373s
    (34 firing incidents keep 102 documents with evidence on)

osmem-server's ``top_hits`` costs in proportion to the documents of each bucket: the ratio rules
(whose evidence reads only the 5xx documents) cost ~15 % more, the p99 and count rules (every
document of the bucket) 5-10x more.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search_tick import INDEX, NOW, CountingConnection, documents, load
from osmem_server import OsmemServer

from watcher.config import Route, SearchSource
from watcher.duration import parse_duration
from watcher.engine import Engine
from watcher.incidents.model import State
from watcher.incidents.state import StateStore
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore

ROUTE = Route.model_validate({"receiver": "console"})
SETTINGS: dict[str, Any] = {
    "off": None,
    "on": {},
    "fields": {"fields": ["status", "model_version", "endpoint", "latency_ms"]},
}
SERVICES = ["prediction-api", "ranking-api", "embedding-api"]


def rules(count: int, evidence: Any) -> list[Rule]:
    """Rule files as users write them: a third 5xx ratio per model version, a third p99 per
    endpoint, a third 429 counts; services and windows vary."""
    out = []
    for i in range(count):
        service = SERVICES[i % 3]
        spec: dict[str, Any] = {
            "name": f"r{i}",
            "source": "logs",
            "every": "1m",
            "window": ["1m", "5m", "15m"][i // 3 % 3],
            "delay": "0s",
            "where": {"service": service},
        }
        kind = i % 3
        if kind == 0:
            spec |= {"group_by": ["model_version"], "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
                     "threshold": {"above": 0.05}}  # fmt: skip
        elif kind == 1:
            spec |= {"group_by": ["endpoint"], "signal": {"percentile": {"field": "latency_ms", "q": 99}},
                     "threshold": {"above": 400}}  # fmt: skip
        else:
            spec |= {"where": {"status": 429}, "threshold": {"above": 10_000}}
        if evidence is not None:
            spec["evidence"] = evidence
        out.append(Rule.model_validate(spec))
    return out


def lines(count: int, span: timedelta, seed: int) -> Iterator[str]:
    """The documents of ``bench_search_tick.documents`` as JSON lines (its bodies minus the actions)."""
    for body in documents(count, span, seed):
        yield from (line for line in body.decode().splitlines() if not line.startswith('{"index"'))


def one_tick(store: LogStore, rule_set: list[Rule], shown: bool, workdir: Path) -> tuple[float, int, int]:
    """(wall seconds, firing incidents, documents they keep) of one engine tick on fresh state."""
    with StateStore(Path(tempfile.mkdtemp(dir=workdir)) / "state.sqlite") as state:
        engine = Engine(rule_set, {"logs": store}, state, ROUTE, partials=False, evidence=shown)
        started = time.perf_counter()
        engine.tick(NOW)
        seconds = time.perf_counter() - started
        firing = state.incidents(states=(State.FIRING,))
    return seconds, len(firing), sum(len(incident.evidence) for incident in firing)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--span", default="2h", help="time covered by the generated logs (default 2h)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    span = parse_duration(args.span)
    workdir = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    embedded = EmbeddedStore(workdir / "logs.duckdb")
    embedded.ingest_lines(lines(args.docs, span, args.seed))
    server = OsmemServer.start(japanese=False)
    try:
        load(server.url, args.docs, span, args.seed)
        source = SearchSource.model_validate(
            {"store": "opensearch", "hosts": [server.url], "index": INDEX, "timeout": "10m"}
        )
        search = SearchStore(source, client_options={"connection_class": CountingConnection})
        sets = {name: rules(args.rules, evidence) for name, evidence in SETTINGS.items()}
        for store in (search, embedded):  # the mapping read, the field columns filled: outside the figures
            one_tick(store, sets["on"], True, workdir)
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in SETTINGS}
        for _ in range(args.repeat):
            for name, rule_set in sets.items():
                shown = name != "off"
                trips, received = search.round_trips, CountingConnection.received
                seconds, firing, kept = one_tick(search, rule_set, shown, workdir)
                row = figures[name]
                row.setdefault("requests", []).append(search.round_trips - trips)
                row.setdefault("bytes", []).append(CountingConnection.received - received)
                row.setdefault("search_s", []).append(seconds)
                row.setdefault("firing", []).append(firing)
                row.setdefault("kept", []).append(kept)
                row.setdefault("embedded_s", []).append(one_tick(embedded, rule_set, shown, workdir)[0])
        print(
            f"{args.docs:,} documents over {args.span}, {args.rules} rules, one tick, median of {args.repeat}"
        )
        base = statistics.median(figures["off"]["bytes"])
        for name, row in figures.items():
            median = {key: statistics.median(values) for key, values in row.items()}
            print(
                f"  evidence {name:<7} requests/tick {median['requests']:.0f}   "
                f"bytes/rule {median['bytes'] / args.rules:,.0f} ({median['bytes'] / base:.2f}x)   "
                f"search tick {median['search_s']:.2f}s   embedded tick {median['embedded_s']:.3f}s   "
                f"firing {median['firing']:.0f}, documents kept {median['kept']:.0f}"
            )
        search.close()
    finally:
        server.close()
        embedded.close()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()

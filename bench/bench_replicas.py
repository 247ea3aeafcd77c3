"""Benchmark the leases of replicas sharing a PostgreSQL state (``ha:``, watcher.process.partitions).

    .venv/bin/python bench/bench_replicas.py [--rules 10000 --replicas 3 --partitions 64] [--url URL]

Several ``Replica`` objects on one database (a throwaway server from tests/pg_server.py unless
``--url``), on a fake clock with the default heartbeat (10 s) and lease (30 s). Prints how the rules
spread (rules per replica, evaluations per rule per tick: must be exactly 1), what one beat and one
tick's fence cost (wall time, PostgreSQL round trips), and how long after a replica's last beat its
rules are held again by the others (in seconds and in ticks of a 1-minute rule).

    .venv/bin/python bench/bench_replicas.py --compare-state --rules 1000 [--ticks 20]

The cost of the shared state: the daemon's tick (``Daemon.tick``: ingest, beat, evaluate, commit)
on the same rules and embedded log (bench/bench_daemon_memory.py's mix) with its state in a
SQLite file, then in PostgreSQL with ``ha: {replicas: 1}``, each in its own process: median and
slowest tick after the first (which ingests the log), and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import pg_server  # noqa: E402
from watcher.config import HaConfig  # noqa: E402
from watcher.incidents.state import StateStore  # noqa: E402
from watcher.process.partitions import Replica  # noqa: E402
from watcher.state.postgres import PostgresBackend  # noqa: E402


class Counted(PostgresBackend):
    """The PostgreSQL backend, counting round trips (statements, and BEGIN + COMMIT per transaction)."""

    trips = 0

    def execute(self, statement: str, args: Any = ()) -> Any:
        Counted.trips += 1
        return super().execute(statement, args)

    def executemany(self, statement: str, rows: Any) -> None:
        batch = list(rows)
        Counted.trips += len(batch)
        super().executemany(statement, batch)

    def transaction(self, durable: bool = True) -> Any:
        Counted.trips += 2
        return super().transaction(durable)


def measure(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall milliseconds and round trips of ``work``."""
    times, trips = [], []
    for _ in range(repeat):
        before, started = Counted.trips, time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
        trips.append(Counted.trips - before)
    return statistics.median(times), statistics.median(trips)


def run(url: str, rules: int, count: int, partitions: int) -> None:
    ha = HaConfig(replicas=count, partitions=partitions)
    now = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    replicas = [
        Replica(StateStore(Counted(url)), ha, lambda: now[0], replica_id=f"replica-{i}") for i in range(count)
    ]
    for _ in range(3):
        for replica in replicas:
            replica.beat()
        now[0] += ha.heartbeat
    names = [f"rule-{i:05d}" for i in range(rules)]
    owners = [sum(replica.owns(name) for replica in replicas) for name in names]
    per_replica = [sum(replica.owns(name) for name in names) for replica in replicas]
    print(f"{rules} rules, {partitions} partitions, {count} replicas")
    print(f"  evaluations per rule per tick: min {min(owners)}, max {max(owners)}")
    print(f"  rules per replica: {per_replica} (partitions {[len(r.held) for r in replicas]})")
    first = replicas[0]
    beat_ms, beat_trips = measure(first.beat, 50)
    fence = first.fence([name for name in names if first.owns(name)])

    def fenced_commit() -> None:
        first.state.commit(fence=fence)

    fence_ms, fence_trips = measure(fenced_commit, 50)
    print(f"  one beat (steady): {beat_ms:.2f} ms, {beat_trips:.0f} round trips")
    print(f"  a commit of nothing but a tick's fence: {fence_ms:.2f} ms, {fence_trips:.0f} round trips")
    dead, alive = replicas[-1], replicas[:-1]
    lost, last_beat = set(dead.held), now[0] - ha.heartbeat  # a heartbeat ago
    while lost - {n for replica in alive for n in replica.held}:
        now[0] += ha.heartbeat
        for replica in alive:
            replica.beat()
    after = now[0] - last_beat
    ticks = after / timedelta(minutes=1)
    print(
        f"  a dead replica's {len(lost)} partitions held again {after.total_seconds():.0f} s after its last "
        f"beat ({ticks:.2f} ticks of a 1m rule; lease {ha.lease.total_seconds():.0f} s)"
    )
    for replica in replicas:
        replica.state.close()


def one_state(state: str, rules: int, ticks: int) -> None:
    """In this process: a daemon on ``state`` ("sqlite" or a PostgreSQL URL) ticking ``ticks``
    times on a fake clock, one rule interval apart; prints its figures on one line."""
    import resource
    import tempfile

    import yaml
    from bench_daemon_memory import rule

    from watcher.cli.common import load
    from watcher.demo import write_log
    from watcher.process.daemon import Daemon

    with tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp:
        work, now = Path(tmp), [datetime.now(UTC)]
        (work / "rules").mkdir()
        (work / "logs").mkdir()
        write_log(work / "logs" / "app.jsonl", start=now[0] - timedelta(hours=1), length=timedelta(hours=1))
        with (work / "rules" / "bench.yaml").open("w") as out:
            yaml.safe_dump({"rules": [rule(i, "5s") for i in range(rules)]}, out)
        where = {"path": "data/state.sqlite"} if state == "sqlite" else {"url": state}
        config = {
            "sources": {"app": {"store": "embedded", "path": "data/logs.duckdb", "ingest": ["logs/*.jsonl"]}},
            "state": where,
            "receivers": {"null": {"console": {"format": "json"}}},
            "route": {"receiver": "null"},
            "rules": ["rules"],
            "templates": str(ROOT / "templates"),
            "http": {"enabled": False},
            **({} if state == "sqlite" else {"ha": {"replicas": 1}}),
        }
        (work / "watcher.yaml").write_text(yaml.safe_dump(config))
        loaded = load(work / "watcher.yaml")
        daemon = Daemon(loaded.config, loaded.rules, clock=lambda: now[0])
        took = []
        for _ in range(ticks):
            started = time.perf_counter()
            daemon.tick()
            took.append((time.perf_counter() - started) * 1000)
            now[0] += timedelta(seconds=5)
        daemon.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    name = "SQLite" if state == "sqlite" else "PostgreSQL"
    print(
        f"  {name:10} tick median {statistics.median(took[1:]):7.1f} ms, slowest {max(took[1:]):7.1f} ms "
        f"(first, with the ingest: {took[0]:.0f} ms); peak RSS {rss:.0f} MB"
    )


def compare_state(url: str, rules: int, ticks: int) -> None:
    print(f"one replica, {rules} rules every 5s, {ticks} ticks: SQLite file vs PostgreSQL (ha.replicas 1)")
    for state in ("sqlite", url):
        subprocess.run(
            [sys.executable, __file__, "--one-state", state, "--rules", str(rules), "--ticks", str(ticks)],
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare-state", action="store_true", help="SQLite vs PostgreSQL: tick time, RSS")
    parser.add_argument("--one-state", help=argparse.SUPPRESS)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway server)")
    args = parser.parse_args()
    if args.one_state:
        one_state(args.one_state, args.rules, args.ticks)
        return
    bench = compare_state if args.compare_state else None
    if args.url:
        if bench is not None:
            bench(args.url, args.rules, args.ticks)
        else:
            run(args.url, args.rules, args.replicas, args.partitions)
        return
    initdb = pg_server.find_initdb()
    if initdb is None:
        sys.exit("no initdb found: pass --url or install postgresql")
    server = pg_server.start(initdb)
    try:
        url = server.create_database()
        if bench is not None:
            bench(url, args.rules, args.ticks)
        else:
            run(url, args.rules, args.replicas, args.partitions)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

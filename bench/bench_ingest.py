"""Benchmark ingesting a JSON-lines file into a fresh embedded store, optionally side by side with
another checkout of watcher (the code before a change).

    .venv/bin/python bench/bench_ingest.py [--log FILE | --days 3 --keep 0.4] [--baseline DIR] [--repeat 1]
        [--daemon]

Without ``--log`` it writes ``bench_backtest.py``'s 3 days of logs (517,967 lines, 139 MB). Each
run is its own process (this tree, then ``--baseline``'s, alternately): it prints the ingest's
wall time, CPU seconds (every thread of the process, and the calling thread's: a busy host's wall
hides what the read-ahead thread took off it), peak RSS before and after, the rows stored, the
lines skipped, and whether both stores hold the same rows (timestamp and document).
``--daemon`` opens the store as the daemon does (``from_source``: 1 MB chunks, smaller row groups),
whose peak is the daemon's high-water mark after a restart with a backlog: a 49 MB backlog
(``--log`` of the first 49 MB of the default log) must stay within ~70 MB over the start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(log: Path, db: Path, daemon: bool) -> dict[str, object]:
    """Ingest ``log`` into a new store at ``db`` in this process (the ``watcher`` on sys.path)."""
    from watcher.config import EmbeddedSource
    from watcher.store.embedded import EmbeddedStore, from_source

    store = from_source(EmbeddedSource(store="embedded", path=db)) if daemon else EmbeddedStore(db)
    if daemon:
        store.keep_columns([_rules_fields()])  # a daemon's store has the columns its rules read
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
    report = store.ingest_files([str(log)])
    store.close()  # its last checkpoint is part of the cost
    wall, cpu, main = time.perf_counter() - started, time.process_time() - cpu, time.thread_time() - main
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(
            "SELECT md5(string_agg(epoch_us(ts)::VARCHAR || ' ' || doc, chr(10) ORDER BY ts, doc)) FROM logs"
        ).fetchone()
    return {
        "wall": wall,
        "cpu": cpu,
        "main_cpu": main,
        "rss_before_mb": rss_before,
        "rss_mb": rss,
        "rows": report.rows_stored,
        "skipped": dict(report.skipped),
        "digest": row[0] if row else None,
    }


def _rules_fields() -> object:
    """One query reading what bench_daemon_memory's rules read (texts and numbers)."""
    from datetime import UTC, datetime, timedelta

    from watcher.query import Percentiles, Query, Stats, Window
    from watcher.query_filters import Eq

    end = datetime.now(UTC)
    return Query(
        "fields",
        Window(end - timedelta(hours=1), end),
        {"p": Percentiles("latency_ms", (99.0,)), "s": Stats("status")},
        Eq("service", "prediction-api"),
        ("endpoint", "model_version", "client_id"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log", type=Path, help="the JSON-lines file (default: write 3 days of demo logs)")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.4)
    parser.add_argument("--baseline", type=Path, help="another watcher checkout to compare with")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--daemon", action="store_true", help="open the store as the daemon does")
    parser.add_argument("--run", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(*args.run, args.daemon)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        log = args.log
        if log is None:
            sys.path.insert(0, str(ROOT / "bench"))
            from bench_backtest import write_inputs

            log = write_inputs(Path(tmp), args.days, args.keep, seed=7)
        print(f"{log}: {log.stat().st_size / 2**20:.0f} MB")
        trees = {"this tree": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
        figures: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
        for attempt in range(args.repeat):
            for name, tree in trees.items():
                db = Path(tmp) / f"{name.replace(' ', '-')}-{attempt}.duckdb"
                env = os.environ | {"PYTHONPATH": str(tree)}
                daemon = ["--daemon"] if args.daemon else []
                command = [sys.executable, __file__, "--run", str(log), str(db), *daemon]
                out = subprocess.run(command, check=True, capture_output=True, env=env, text=True).stdout
                f = json.loads(out)
                figures[name].append(f)
                print(
                    f"  {name:<9} ingest {f['wall']:.2f}s wall, {f['cpu']:.2f}s CPU "
                    f"({f['main_cpu']:.2f}s on the calling thread), peak RSS "
                    f"{f['rss_before_mb']:.0f} -> {f['rss_mb']:.0f} MB; {f['rows']:,} rows, "
                    f"skipped {f['skipped']}"
                )
                db.unlink()
        if args.baseline:
            new, old = figures["this tree"], figures["baseline"]
            same = {(f["digest"], json.dumps(f["skipped"])) for f in new + old}
            best = {name: min(float(str(f["cpu"])) for f in runs) for name, runs in figures.items()}
            print(
                f"  CPU {best['baseline'] / best['this tree']:.1f}x less (best of {args.repeat}); "
                f"same rows and skipped lines: {len(same) == 1}"
            )


if __name__ == "__main__":
    main()

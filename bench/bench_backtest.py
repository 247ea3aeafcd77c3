"""Benchmark ``watcher backtest``'s replay over days of logs: per-bucket partials read ahead
(each row aggregated once per rule, many ticks per statement) against re-reading every window.

    .venv/bin/python bench/bench_backtest.py [--days 3 --keep 0.4] [--skip-reread] [--processes N]

Writes the demo's synthetic traffic (``watcher.demo.generate``, its incidents in the first day)
over ``--days`` days, keeping a ``--keep`` share of the lines (0.4: ~170k a day), and replays 8
rules of the shipped kinds (5xx ratio and its spike, p99 latency and its spike, traffic flatline,
drift over 4 features, two validity rules) minute by minute through ``watcher.replay.Replay``.
Each path runs in its own process, the partials path with the rules shared among as many
processes as ``watcher backtest`` uses (``--processes``, ``watcher.replay_workers``): prints its
ingest and replay wall time, CPU (its workers' included), peak RSS (the workers' apart), and
whether both told the same events (rule, group, event, minute) with the same values.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcher.demo import DEMO_START, generate  # noqa: E402
from watcher.replay_workers import processes  # noqa: E402

RULES = [
    "prediction-5xx-rate",
    "prediction-5xx-spike",
    "prediction-latency-p99",
    "prediction-latency-p99-spike",
    "prediction-traffic-flatline",
    "feature-drift",
    "feature-unseen-country",
    "feature-missing-tenure",
]
DRIFT_FEATURES = ["features.age", "features.income", "features.country", "features.plan"]


def write_inputs(workdir: Path, days: int, keep: float, seed: int) -> Path:
    """The log, the 8 rules (the drift rule on 4 features, the traffic rules scaled to the kept
    share) and a watcher.yaml; returns the log's path."""
    rng = np.random.default_rng(seed)
    log = workdir / "requests.jsonl"
    with log.open("w") as out:
        for doc in generate(DEMO_START, timedelta(days=days), seed=seed):
            if rng.random() < keep:
                out.write(json.dumps(doc, separators=(",", ":")) + "\n")
    rules = workdir / "rules"
    shutil.copytree(ROOT / "rules" / "baselines", rules / "baselines")
    for name in RULES:
        spec = yaml.safe_load((ROOT / "rules" / f"{name}.yaml").read_text())
        if name == "feature-drift":
            spec["drift"]["features"] = DRIFT_FEATURES
            spec["drift"]["min_samples"] = int(spec["drift"]["min_samples"] * keep)
        if "flatline" in spec:
            spec["flatline"]["below"] = int(spec["flatline"]["below"] * keep)
        (rules / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    config = yaml.safe_load((ROOT / "watcher.yaml").read_text())
    config["rules"] = [str(rules)]
    (workdir / "watcher.yaml").write_text(yaml.safe_dump(config))
    return log


def run_path(workdir: Path, days: int, partials: bool, processes: int) -> dict[str, object]:
    """Replay in this process (and, with ``processes``, its workers); the figures and the events
    it told. CPU counts the workers' too."""
    from watcher.replay import Replay
    from watcher.rules.loader import load_config, load_rules

    config = load_config(workdir / "watcher.yaml")
    rules = load_rules([workdir / "rules"], config).rules
    started, cpu = time.perf_counter(), time.process_time()
    run = workdir / f"run-{partials}"
    replay = Replay(config, rules, [workdir / "requests.jsonl"], run, processes=processes if partials else 1)
    ingest, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu
    replay.engine.partials = partials
    if not partials:
        replay.engine.read_ahead = lambda until, stretch=None: None  # type: ignore[method-assign]
    events = []
    for tick in replay.ticks(DEMO_START, DEMO_START + timedelta(days=days)):
        for t in tick.report.transitions:
            group = sorted(t.incident.group.items())
            events.append([t.incident.rule, group, t.event.value, t.at.isoformat(), t.incident.value])
    replay.close()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "ingest": ingest,
        "ingest_cpu": ingest_cpu,
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu + workers.ru_utime + workers.ru_stime,
        "rss_mb": _high_water_mb(),
        "workers_rss_mb": workers.ru_maxrss / 1024,
        "processes": len(replay.shares),
        "lines": sum(report.rows_stored for report in replay.ingested.values()),
        "events": events,
    }


def _high_water_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``getrusage``'s ``ru_maxrss``: Linux carries it over
    ``exec``, so each path reported the bench's own peak (the log written in memory, 851 MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def same(one: list[list[object]], other: list[list[object]]) -> bool:
    if [e[:4] for e in one] != [e[:4] for e in other]:
        return False
    return all(
        a[4] == b[4] or (a[4] is not None and b[4] is not None and abs(a[4] - b[4]) <= 1e-9 * abs(b[4]))
        for a, b in zip(one, other, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.4, help="share of the demo's lines kept")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-reread", action="store_true", help="time the partials path only")
    parser.add_argument(
        "--processes",
        type=int,
        default=processes(),
        help="the partials path's processes (the backtest's default)",
    )
    parser.add_argument("--path", choices=["partials", "reread"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(Path(args.workdir), args.days, args.path == "partials", args.processes)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        write_inputs(workdir, args.days, args.keep, args.seed)
        print(f"{args.days} days of logs written in {time.perf_counter() - started:.1f}s; {len(RULES)} rules")
        figures = {}
        for path in ["partials"] + ([] if args.skip_reread else ["reread"]):
            command = [sys.executable, __file__, "--path", path, "--workdir", tmp, "--days", str(args.days),
                       "--processes", str(args.processes)]  # fmt: skip
            figures[path] = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            f = figures[path]
            print(
                f"  {path:<9} {f['lines']:,} lines: ingest {f['ingest']:.1f}s ({f['ingest_cpu']:.1f}s CPU), "
                f"backtest {f['wall']:.1f}s wall ({f['wall'] - f['ingest']:.1f}s replay), "
                f"{f['cpu']:.1f}s CPU, {f['processes']} process(es), peak RSS {f['rss_mb']:.0f} MB "
                f"(workers {f['workers_rss_mb']:.0f} MB), {len(f['events'])} events"
            )
        if "reread" in figures:
            speedup = figures["reread"]["wall"] / figures["partials"]["wall"]
            equal = same(figures["partials"]["events"], figures["reread"]["events"])
            print(f"  speed-up {speedup:.1f}x wall; events identical: {equal}")


if __name__ == "__main__":
    main()

"""Time to a drift verdict: watcher (store aggregation + scoring) vs the in-memory way.

20 features (14 numeric, 6 categorical) x N rows (default 1M) in a one-hour window of an embedded
store, against a baseline profile of 200k training rows; 5 features drifted. Three ways to a verdict:

- watcher:   ``drift.queries`` -> ``EmbeddedStore.evaluate`` (one fused scan; only bin counts leave
             DuckDB) -> ``drift.evaluate`` (PSI on the counts);
- in-memory: pull the window's raw feature values out of the store into pandas (the fastest way,
             DuckDB straight to a DataFrame), then PSI with the same bins (numpy) plus scipy's
             ks_2samp / chi2_contingency on the raw values, as a pandas+scipy drift job does;
- Evidently: the same DataFrames through ``Report([DataDriftPreset()])``, when ``--evidently-python``
             names an interpreter with evidently installed (kept out of watcher's own venv).

Each way runs in its own process, so peak RSS (VmHWM) is its own. The script checks that the
in-memory PSI equals watcher's to 1e-9 on the same bins, and prints wall and CPU times (CPU: all
the process's threads), RSS, the ratio and the load average (the machine may be shared).

    .venv/bin/python bench/bench_drift.py [--rows 1000000] [--evidently-python /path/to/python]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=1)
NUMERIC = [f"n{i:02d}" for i in range(14)]
CATEGORICAL = [f"c{i:02d}" for i in range(6)]
DRIFTED = {"n01", "n05", "n09", "c00", "c03"}
FLOOR = 1e-4


# --------------------------------------------------------------------------- data


def make_frame(rows: int, seed: int, drifted: bool) -> Any:
    """Synthetic features; with ``drifted`` five of them shift."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        shift = 1.0 if drifted and name in DRIFTED else 0.0
        kind = i % 4
        if kind == 0:
            columns[name] = rng.normal(50 + 10 * shift, 10, rows)
        elif kind == 1:
            columns[name] = rng.lognormal(10 + 0.3 * shift, 0.5, rows).round(2)
        elif kind == 2:
            columns[name] = rng.exponential(5 * (1 + shift), rows)
        else:
            columns[name] = rng.poisson(12 + 4 * shift, rows).astype(float)
    for i, name in enumerate(CATEGORICAL):
        labels = [f"v{j}" for j in range(5 + 9 * i)]
        weights = (
            np.linspace(2, 1, len(labels)) if drifted and name in DRIFTED else np.linspace(1, 2, len(labels))
        )
        columns[name] = rng.choice(labels, rows, p=weights / weights.sum())
    return pd.DataFrame(columns)


def prepare(workdir: Path, rows: int, reference_rows: int) -> dict[str, float]:
    """Profile, reference parquet, and the current window ingested into an embedded store."""
    import duckdb

    from watcher.baseline import profile_from_frame, save_profile
    from watcher.store.embedded import EmbeddedStore

    started = time.perf_counter()
    reference = make_frame(reference_rows, seed=1, drifted=False)
    save_profile(
        profile_from_frame(reference, built_at=AT, source="bench", prefix="features."),
        workdir / "profile.json",
    )
    con = duckdb.connect()
    con.register("reference", reference)
    con.execute(f"COPY reference TO '{workdir / 'reference.parquet'}' (FORMAT parquet)")
    current = make_frame(rows, seed=2, drifted=True)
    current["ts"] = AT - WINDOW + (WINDOW / rows) * current.index.to_numpy()
    con.register("current", current)
    fields = ", ".join(f"{name} := {name}" for name in NUMERIC + CATEGORICAL)
    con.execute(
        f"""COPY (SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ') AS "@timestamp", 'prediction-api' AS service,
                  struct_pack({fields}) AS features FROM current)
            TO '{workdir / "window.jsonl"}' (FORMAT json)"""
    )
    generated = time.perf_counter()
    store = EmbeddedStore(workdir / "logs.duckdb")
    store.ingest_files([str(workdir / "window.jsonl")])
    stored = store.row_count()
    store.close()
    if stored != rows:
        raise SystemExit(f"ingested {stored} rows, expected {rows}")
    return {"generate_s": generated - started, "ingest_s": time.perf_counter() - generated}


# --------------------------------------------------------------------------- the three ways (child processes)


def _rss_mb() -> float:
    """This process's peak RSS. ``ru_maxrss`` survives ``exec``: a child started after the parent
    generated the data reported the parent's peak, so Linux's per-process ``VmHWM`` comes first."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_watcher(workdir: Path, repeat: int) -> dict[str, Any]:
    from watcher.detect import drift
    from watcher.rules.models import Rule
    from watcher.store.embedded import EmbeddedStore

    rule = Rule.model_validate(
        {
            "name": "bench",
            "source": "bench",
            "window": "1h",
            "delay": "0s",
            "drift": {"baseline": str(workdir / "profile.json"), "method": "psi", "min_samples": 1000},
        }
    )
    store = EmbeddedStore(workdir / "logs.duckdb")
    ready_rss = _rss_mb()
    times, cpus, finding = [], [], None
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        results = store.evaluate(drift.queries(rule, AT))
        (finding,) = drift.evaluate(rule, results, AT)
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    store.close()
    assert finding is not None
    scores = {name.split(".", 1)[1]: info["score"] for name, info in finding.details["features"].items()}
    return {
        "times": times,
        "cpus": cpus,
        "ready_rss_mb": ready_rss,
        "peak_rss_mb": _rss_mb(),
        "psi": scores,
        "drifted": sorted(name.split(".", 1)[1] for name in finding.details["drifted"]),
    }


def pull_window(db: Path) -> Any:
    """The window's raw feature values, straight from DuckDB into a DataFrame: the fastest pull
    there is (one JSON parse per row, numbers cast in SQL so they arrive as float64 arrays)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    names = NUMERIC + CATEGORICAL
    paths = ", ".join(f"'$.features.{name}'" for name in names)
    columns = ", ".join(
        f"TRY_CAST(_s[{i + 1}] AS DOUBLE) AS {name}" if name in NUMERIC else f"_s[{i + 1}] AS {name}"
        for i, name in enumerate(names)
    )
    start, end = (AT - WINDOW).replace(tzinfo=None), AT.replace(tzinfo=None)
    sql = (
        f"WITH src AS MATERIALIZED (SELECT json_extract_string(doc, [{paths}]) AS _s FROM logs "
        f"WHERE ts >= ? AND ts < ?) SELECT {columns} FROM src"
    )
    frame = con.execute(sql, [start, end]).df()
    con.close()
    return frame


def psi(reference: Any, current: Any) -> float:
    """PSI with the 1e-4 floor, written here independently of watcher.detect.stats."""
    import numpy as np

    r = np.maximum(reference / reference.sum(), FLOOR)
    c = np.maximum(current / current.sum(), FLOOR)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def run_in_memory(workdir: Path, repeat: int) -> dict[str, Any]:
    import duckdb
    import numpy as np
    from scipy.stats import chi2_contingency, ks_2samp

    profile = json.loads((workdir / "profile.json").read_text())["features"]
    reference = (
        duckdb.connect().execute(f"SELECT * FROM read_parquet('{workdir / 'reference.parquet'}')").df()
    )
    ready_rss = _rss_mb()
    times, cpus, pulls, scores, p_values = [], [], [], {}, {}
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        current = pull_window(workdir / "logs.duckdb")
        pulled = time.perf_counter()
        for name in NUMERIC:
            stored = profile[f"features.{name}"]
            edges = np.asarray(stored["edges"])
            values = current[name].dropna().to_numpy()
            counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
            scores[name] = psi(np.asarray(stored["shares"]) * stored["count"], counts.astype(float))
            p_values[name] = float(ks_2samp(reference[name].to_numpy(), values).pvalue)
        for name in CATEGORICAL:
            stored = profile[f"features.{name}"]
            labels = [label for label in stored["shares"] if label != "__other__"]
            observed = current[name].dropna().value_counts()
            counts = np.array([observed.get(label, 0) for label in labels] + [0], dtype=float)
            counts[-1] = observed.sum() - counts.sum()
            expected = (
                np.array([stored["shares"][label] for label in [*labels, "__other__"]]) * stored["count"]
            )
            scores[name] = psi(expected, counts)
            table = np.vstack([expected, counts])
            p_values[name] = float(chi2_contingency(table[:, table.sum(axis=0) > 0])[1])
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        pulls.append(pulled - started)
        del current
    return {
        "times": times,
        "cpus": cpus,
        "pull_times": pulls,
        "ready_rss_mb": ready_rss,
        "peak_rss_mb": _rss_mb(),
        "psi": scores,
        "drifted": sorted(n for n, s in scores.items() if s >= 0.1),
    }


def run_evidently(workdir: Path, repeat: int) -> dict[str, Any]:
    import duckdb
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = (
        duckdb.connect().execute(f"SELECT * FROM read_parquet('{workdir / 'reference.parquet'}')").df()
    )
    ready_rss = _rss_mb()
    times, cpus, pulls = [], [], []
    drifted: list[str] = []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        current = pull_window(workdir / "logs.duckdb")
        pulled = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        data = snapshot.dict()
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        pulls.append(pulled - started)
        drifted = sorted(_evidently_drifted(data))
        del current
    return {
        "times": times,
        "cpus": cpus,
        "pull_times": pulls,
        "ready_rss_mb": ready_rss,
        "peak_rss_mb": _rss_mb(),
        "drifted": drifted,
    }


def _evidently_drifted(data: dict[str, Any]) -> list[str]:
    """Columns Evidently's per-column drift metrics call drifted (value above its threshold)."""
    found = []
    for metric in data.get("metrics", []):
        config = metric.get("config", {})
        column, threshold, value = config.get("column"), config.get("threshold"), metric.get("value")
        if column and isinstance(value, int | float) and isinstance(threshold, int | float):
            method = str(config.get("method", "")).lower()
            is_p_value = "p_value" in method or "test" in method
            if (value < threshold) if is_p_value else (value >= threshold):
                found.append(column)
    return found


# --------------------------------------------------------------------------- orchestration


def child(mode: str, workdir: Path, repeat: int, python: str = sys.executable) -> dict[str, Any]:
    out = subprocess.run(
        [python, __file__, "--child", mode, "--workdir", str(workdir), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def report(rows: int, setup: dict[str, float], results: dict[str, dict[str, Any]]) -> None:
    watcher_s = median(results["watcher"]["times"])
    made = (
        "data reused"
        if math.isnan(setup["generate_s"])
        else (f"setup: generate {setup['generate_s']:.1f}s, ingest {setup['ingest_s']:.1f}s")
    )
    print(f"\n{rows:,} rows x {len(NUMERIC) + len(CATEGORICAL)} features in the window ({made})")
    print(
        f"{'way':<34}{'verdict s':>10}{'CPU s':>8}{'of which pull s':>17}{'peak RSS MB':>13}{'x watcher':>11}"
    )
    for name, result in results.items():
        seconds = median(result["times"])
        pull = f"{median(result['pull_times']):.2f}" if "pull_times" in result else "-"
        label = {
            "watcher": "watcher (store aggregation + PSI)",
            "in-memory": "pandas + scipy on raw values",
            "evidently": "Evidently DataDriftPreset",
        }[name]
        cpu = median(result["cpus"])
        print(
            f"{label:<34}{seconds:>10.2f}{cpu:>8.2f}{pull:>17}{result['peak_rss_mb']:>13.0f}"
            f"{seconds / watcher_s:>11.1f}"
        )
    memory = results["in-memory"]
    compute = median([t - p for t, p in zip(memory["times"], memory["pull_times"], strict=True)])
    print(
        f"in-memory compute alone (values already in RAM): {compute:.2f}s = "
        f"{compute / watcher_s:.1f}x watcher"
    )
    for name, result in results.items():
        print(f"drifted per {name}: {', '.join(result['drifted'])}")
    runs = results["watcher"]
    print(
        "watcher runs, wall s: "
        + " ".join(f"{t:.2f}" for t in runs["times"])
        + "; CPU s: "
        + " ".join(f"{t:.2f}" for t in runs["cpus"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--reuse", action="store_true", help="keep the data already in --workdir")
    parser.add_argument("--evidently-python", help="a python with evidently installed (optional)")
    parser.add_argument("--child", choices=("watcher", "in-memory", "evidently"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = {"watcher": run_watcher, "in-memory": run_in_memory, "evidently": run_evidently}[args.child]
        print(json.dumps(run(args.workdir, args.repeat)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.reuse and (workdir / "logs.duckdb").exists():
            setup = {"generate_s": math.nan, "ingest_s": math.nan}  # data of an earlier run
        else:
            setup = prepare(workdir, args.rows, args.reference_rows)
        load_before = os.getloadavg()[0]
        results = {
            "watcher": child("watcher", workdir, args.repeat),
            "in-memory": child("in-memory", workdir, args.repeat),
        }
        if args.evidently_python:
            results["evidently"] = child("evidently", workdir, args.repeat, args.evidently_python)
    gap = max(
        abs(results["watcher"]["psi"][n] - results["in-memory"]["psi"][n]) for n in NUMERIC + CATEGORICAL
    )
    report(args.rows, setup, results)
    print(f"load average (1 min) before / after the runs: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"max |PSI watcher - PSI in-memory| over {len(NUMERIC) + len(CATEGORICAL)} features: {gap:.2e}")
    if not gap <= 1e-9 or math.isnan(gap):
        raise SystemExit("PSI values differ by more than 1e-9")


if __name__ == "__main__":
    main()

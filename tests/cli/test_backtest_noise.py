"""A backtest tells when a drift rule held levels back as sampling noise: a low-traffic service's
5-minute windows (~120 rows) against the window 30 minutes before, both drawn from one
distribution, fire without the test and stay quiet with it, and the summary says how often."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RANGE = ["--start", "2026-01-05T08:40:00Z", "--end", "2026-01-05T09:30:00Z"]


def backtest(folder: Path, significance: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """A backtest of 90 minutes of one service's logs, a line every 2.5 s with a latency drawn
    uniformly from 0-100 ms, by a drift rule with 10 latency bins and the given ``significance``."""
    rng = random.Random(5)
    lines = [
        json.dumps({"ts": (START + timedelta(seconds=i * 2.5)).isoformat(), "latency": rng.uniform(0, 100)})
        for i in range(90 * 24)
    ]
    (folder / "app.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "rules").mkdir()
    (folder / "rules" / "drift.yaml").write_text(
        "{name: latency-drift, source: app, every: 1m, window: 5m, delay: 0s,"
        " drift: {reference: {offset: 30m}, min_samples: 50,"
        " features: [{name: latency, edges: [10, 20, 30, 40, 50, 60, 70, 80, 90]}]"
        f"{significance}}}}}\n"
    )
    (folder / "watcher.yaml").write_text(
        "sources: {app: {store: embedded, path: data/logs.duckdb, time_field: ts}}\n"
        "state: {path: data/state.sqlite}\n"
        "receivers: {console: {console: {format: text}}}\n"
        "route: {receiver: console, group_by: [rule], group_wait: 0s}\n"
    )
    argv = ["backtest", "--config", str(folder / "watcher.yaml"), "--logs", str(folder / "app.jsonl"), *RANGE]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    return out, err


def test_noise_fires_without_the_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = backtest(tmp_path, ", significance: null", capsys)
    assert '"event": "firing"' in out
    # Fired twice by noise; then windows compared with those "incidents" are left out as references.
    row = err.splitlines()[1]
    assert row.split() == ["latency-drift", "51", "25", "(49%)", "0", "2"]
    assert "within sampling noise" not in err


def test_the_backtest_counts_the_levels_held_back_as_noise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = backtest(tmp_path, "", capsys)
    assert '"event": "firing"' not in out
    header, row, noise = err.splitlines()
    assert header.split()[-1] == "fires"
    assert row.split() == ["latency-drift", "51", "0", "(0%)", "0", "0"]
    assert noise.startswith(
        "latency-drift: a drift level within sampling noise, not counted, in 36 of 51 evaluations "
        "(last: no drift: max psi "
    )
    assert "(latency; within noise: p " in noise

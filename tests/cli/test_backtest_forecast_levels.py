"""`watcher backtest` of a forecast with severity levels: each change of severity is a line of its own,
as a threshold's is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_severity_levels import LOAD, load_lines
from watcher.cli import main

RULE = (
    "{name: api-load, source: app, every: 1m, window: 1m, delay: 0s, signal: count,"
    " forecast: {above: {warning: 100, critical: 150}, history: 5m, horizon: 5m, min_points: 3}}\n"
)


def test_a_forecast_escalating_and_de_escalating_is_in_the_backtest_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "load.yaml").write_text(RULE)
    (tmp_path / "app.jsonl").write_text("\n".join(load_lines(LOAD)) + "\n")
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "sources: {app: {store: embedded, path: data/logs.duckdb}}\n"
        "state: {path: data/state.sqlite}\n"
        "receivers: {console: {console: {format: text}}}\n"
        "route: {receiver: console, group_by: [rule], group_wait: 0s}\n"
        "rules: [rules]\n"
    )

    code = main(["backtest", "--config", str(config), "--logs", str(tmp_path / "app.jsonl"),
                 "--start", "2026-01-05T09:01:00Z", "--end", "2026-01-05T09:16:00Z"])  # fmt: skip

    out, _ = capsys.readouterr()
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["event"], r["at"], r["severity"]) for r in lines if r["event"] != "nodata"] == [
        ("firing", "2026-01-05T09:07:00Z", "warning"),
        ("update", "2026-01-05T09:09:00Z", "critical"),
        ("update", "2026-01-05T09:13:00Z", "warning"),
        ("resolved", "2026-01-05T09:15:00Z", "warning"),
    ]

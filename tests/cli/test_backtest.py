"""`watcher backtest` over the demo's log: its JSON lines are a contract other tools read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.demo import DEMO_LENGTH, DEMO_START, score, write_log
from watcher.rules.loader import load_config, load_rules

ROOT = Path(__file__).parents[2]
START = DEMO_START.isoformat().replace("+00:00", "Z")
END = (DEMO_START + DEMO_LENGTH).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "requests.jsonl"
    write_log(path)
    return path


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", "--config", str(ROOT / "watcher.yaml"), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_reports_every_injected_incident_and_nothing_in_quiet_periods(
    demo_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = backtest(capsys, "--logs", str(demo_log), "--start", START, "--end", END)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert records, "no notifications"
    for record in records:
        assert set(record) == {"rule", "group", "event", "at", "value", "severity"}
        assert record["event"] in ("firing", "resolved")
        datetime.fromisoformat(record["at"])
    events = [(r["rule"], r["event"], datetime.fromisoformat(r["at"])) for r in records]
    rules = {rule.name for rule in load_rules([ROOT / "rules"], load_config(ROOT / "watcher.yaml")).rules}
    outcomes, stray = score(events, rules)
    assert [o.injection.kind for o in outcomes if not o.caught] == []
    assert stray == []
    five_xx = [r for r in records if r["rule"] == "prediction-5xx-rate"]
    assert five_xx[0]["group"] == {"model_version": "v3"}
    assert five_xx[0]["severity"] == "critical"
    assert five_xx[0]["value"] > 0.05


def test_text_format_prints_a_table(demo_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    end = (DEMO_START.replace(hour=10)).isoformat()
    code, out, _ = backtest(
        capsys, "--logs", str(demo_log), "--start", START, "--end", end, "--format", "text"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["at", "event", "rule", "group", "value", "severity"]
    assert "prediction-5xx-rate" in out
    rows = lines[1:-1]
    assert rows, "the 5xx burst at 09:00 is inside the range"
    assert lines[-1] == f"{len(rows)} notifications"


def test_end_before_start_is_refused(demo_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = backtest(capsys, "--logs", str(demo_log), "--start", END, "--end", START)
    assert code == 2
    assert err.strip() == "watcher backtest: --end is before --start"


def test_missing_log_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    code, _, err = backtest(capsys, "--logs", str(missing), "--start", START, "--end", END)
    assert code == 2
    assert err.strip() == f"watcher backtest: log file not found: {missing}"


def test_bad_time_is_refused_with_a_hint(demo_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        backtest(capsys, "--logs", str(demo_log), "--start", "yesterday", "--end", END)
    assert exit_info.value.code == 2
    assert "invalid time 'yesterday': use ISO 8601, e.g. 2026-01-05T08:00:00Z" in capsys.readouterr().err


def test_missing_config_is_refused(
    demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "backtest",
            "--config",
            str(tmp_path / "none.yaml"),
            "--logs",
            str(demo_log),
            "--start",
            START,
            "--end",
            END,
        ]
    )
    assert code == 1
    assert f"config file {tmp_path / 'none.yaml'} not found" in capsys.readouterr().err


def test_a_per_service_flatline_fires_for_the_service_that_goes_silent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, stop = datetime(2026, 1, 5, 8, 0, tzinfo=UTC), datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    log = tmp_path / "app.jsonl"
    lines = [
        json.dumps({"ts": (start + timedelta(seconds=i)).isoformat(), "svc": svc, "status": 200})
        for i in range(0, 45 * 60, 2)
        for svc in ("a", "b", "c")
        if svc != "b" or start + timedelta(seconds=i) < stop
    ]
    log.write_text("\n".join(lines) + "\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "flat.yaml").write_text(
        "{name: per-svc-flatline, source: app, every: 1m, window: 5m, delay: 0s, group_by: [svc],"
        " signal: count, flatline: {below: 10}, severity: critical}\n"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "sources: {app: {store: embedded, path: data/logs.duckdb, time_field: ts}}\n"
        "state: {path: data/state.sqlite}\n"
        "receivers: {console: {console: {format: text}}}\n"
        "route: {receiver: console, group_by: [rule, svc], group_wait: 0s}\n"
        "rules: [rules]\n"
    )
    code = main(["backtest", "--config", str(config), "--logs", str(log),
                 "--start", "2026-01-05T08:10:00Z", "--end", "2026-01-05T08:44:00Z"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["group"], r["event"], r["at"]) for r in records] == [
        ({"svc": "b"}, "firing", "2026-01-05T08:35:00Z")  # its first window without data
    ]

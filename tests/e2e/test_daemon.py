"""A real `watcher run` process: it notifies, stops cleanly on SIGTERM, and a restart re-sends nothing."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.daemon import WatcherProcess, write_config

pytestmark = pytest.mark.e2e

ERRORS = {
    "name": "app-errors",
    "source": "app",
    "every": "1s",
    "window": "30s",
    "delay": "0s",
    "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
    "threshold": {"above": 0.5},
    "min_events": 5,
    "severity": "critical",
    "annotations": {"summary": "error rate {{ value | percent }}"},
}


def append_requests(path: Path, count: int, status: int) -> None:
    now = datetime.now(UTC).timestamp()
    with path.open("a") as out:
        for i in range(count):
            out.write(json.dumps({"ts": now - i * 0.01, "status": status}) + "\n")


def firing(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in lines if line["event"] == "firing"]


def test_fires_stops_on_sigterm_and_does_not_resend_after_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path, [ERRORS])
    log = tmp_path / "logs" / "app.jsonl"
    append_requests(log, 20, 503)

    first = WatcherProcess(config)
    first.wait_for(lambda lines: len(firing(lines)) == 1)
    assert first.terminate() == 0
    assert "stopped" in first.stderr()
    (notification,) = first.lines
    assert notification["incidents"][0]["rule"] == "app-errors"  # type: ignore[index]
    assert notification["text"].startswith("FIRING critical app-errors")  # type: ignore[union-attr]

    # Still failing: the restarted daemon keeps the firing incident and sends nothing new.
    append_requests(log, 20, 503)
    second = WatcherProcess(config)
    second.wait_started()
    time.sleep(3)
    assert second.terminate() == 0
    assert second.lines == []

    with sqlite3.connect(tmp_path / "data" / "state.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_sigterm_during_a_tick_finishes_it_and_exits_zero(tmp_path: Path) -> None:
    config = write_config(tmp_path, [ERRORS])
    append_requests(tmp_path / "logs" / "app.jsonl", 1000, 200)
    process = WatcherProcess(config)
    process.wait_started()
    time.sleep(1)
    started = time.monotonic()
    assert process.terminate() == 0
    assert time.monotonic() - started < 10
    assert "stopping: finishing the in-flight tick" in process.stderr()


def test_an_invalid_rule_is_reported_with_its_position_and_the_daemon_runs(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{**ERRORS, "every": "1sec"}])
    process = WatcherProcess(config)
    # An invalid rule does not stop the daemon: the error is printed and the other rules run.
    process.wait_started()
    assert process.terminate() == 0
    assert "app-errors.yaml:" in process.stderr()
    assert "invalid duration '1sec'" in process.stderr()

"""No log line is dropped silently: skipped lines are warned about (rate-limited, with file and line
number), counted by reason in /metrics, and summarised in one line for the commands."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.daemon import write_config
from watcher.cli.common import load
from watcher.config import EmbeddedSource
from watcher.process.daemon import Daemon
from watcher.process.metrics import Metrics
from watcher.store.embedded import EmbeddedStore, from_source
from watcher.store.ingest import AMBIGUOUS_TIMESTAMP, MISSING_TIMESTAMP, NOT_JSON, IngestReport, Rejection
from watcher.store.rejections import RejectionLog, no_usable_lines, summary

GOOD = json.dumps({"ts": "2026-01-05T08:00:00Z", "status": 200})
NO_TS = json.dumps({"time": "2026-01-05T08:00:00Z", "status": 200})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def append(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_skipped_lines_are_warned_about_once_a_minute_per_reason_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, log = Clock(), tmp_path / "app.jsonl"
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts", rejections=RejectionLog(clock=clock))
    append(log, GOOD, "{oops", NO_TS, GOOD, "{oops")
    caplog.set_level(logging.WARNING, "watcher.store.ingest")
    store.ingest_files([str(log)])
    assert warnings(caplog) == [
        f"{log}:2: log line skipped (not_json): not JSON (and 1 more line skipped for not_json)",
        f"{log}:3: log line skipped (missing_timestamp): no time field 'ts'",
    ]
    caplog.clear()
    append(log, "{oops", "{oops")
    clock.now += 30
    store.ingest_files([str(log)])
    assert warnings(caplog) == []  # within the minute: counted, not logged
    append(log, "{oops")
    clock.now += 31
    store.ingest_files([str(log)])
    assert warnings(caplog) == [
        f"{log}:8: log line skipped (not_json): not JSON (and 2 more lines skipped for not_json)"
    ]
    store.close()


def test_the_daemons_store_warns_and_commands_stores_leave_it_to_their_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "watcher.store.ingest")
    daemons = from_source(EmbeddedSource(store="embedded", path=tmp_path / "a.duckdb", time_field="ts"))
    daemons.ingest_lines(["{oops"])
    daemons.close()
    assert warnings(caplog) == ["line 1: log line skipped (not_json): not JSON"]
    caplog.clear()
    quiet = EmbeddedStore(tmp_path / "b.duckdb", time_field="ts")
    quiet.ingest_lines(["{oops"])
    quiet.close()
    assert warnings(caplog) == []


def test_an_integer_timestamp_without_a_unit_is_refused_not_stored_in_1970(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts")
    report = store.ingest_lines([json.dumps({"ts": 12345, "status": 200})])
    assert (report.rows_stored, dict(report.skipped)) == (0, {AMBIGUOUS_TIMESTAMP: 1})
    assert report.first[AMBIGUOUS_TIMESTAMP].detail == (
        "numeric timestamp 12345 has no unit: set time_format: epoch_s or epoch_ms on the source"
    )
    assert store.time_range() is None
    store.close()


def test_line_numbers_continue_across_passes_and_chunks(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts", read_chunk=64)
    append(log, GOOD, GOOD, "", GOOD)
    store.ingest_files([str(log)])
    append(log, GOOD, NO_TS)
    report = store.ingest_files([str(log)])
    assert report.first[MISSING_TIMESTAMP] == Rejection(str(log), 6, "no time field 'ts'")
    store.close()
    reopened = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts")
    append(log, "{oops")
    assert reopened.ingest_files([str(log)]).first[NOT_JSON].location == f"{log}:7"
    reopened.close()


def test_rejected_lines_are_counted_by_source_and_reason_in_metrics() -> None:
    metrics = Metrics(process=False)
    metrics.lines_rejected("app", {NOT_JSON: 2, MISSING_TIMESTAMP: 1})
    metrics.lines_rejected("app", {NOT_JSON: 1})
    body = metrics.exposition()[0].decode()
    assert 'watcher_ingest_rejected_total{reason="not_json",source="app"} 3.0' in body
    assert 'watcher_ingest_rejected_total{reason="missing_timestamp",source="app"} 1.0' in body


def test_summary_counts_each_reason_and_points_at_the_first_line() -> None:
    report = IngestReport(lines_read=20, rows_stored=8)
    for line in range(17, 27):
        report.reject(MISSING_TIMESTAMP, Rejection("app.jsonl", line, "no time field 'ts'"))
    for line in (30, 31):
        report.reject(NOT_JSON, Rejection("app.jsonl", line, "not JSON"))
    assert summary(report, "ts") == (
        "skipped 12 lines: 10 missing timestamp (field 'ts'), 2 not JSON; first at app.jsonl:17"
    )


def test_no_usable_lines_names_the_time_field_and_the_fields_seen(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts")
    report = store.ingest_lines([NO_TS, NO_TS])
    store.close()
    assert no_usable_lines(report, "ts", "app.jsonl") == (
        "no usable log lines in app.jsonl (skipped 2 lines: 2 missing timestamp (field 'ts'); first at "
        "line 1); looked for the time field 'ts', saw the fields: status, time (set time_field)"
    )
    assert no_usable_lines(IngestReport(), "ts", "empty.jsonl") == "no log lines in empty.jsonl"


def test_the_daemons_ingest_counts_and_warns_about_skipped_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rule = {"name": "errors", "source": "app", "every": "1m", "window": "5m", "signal": "count"}
    path = write_config(tmp_path, [{**rule, "threshold": {"above": 100}, "severity": "warning"}])
    log = tmp_path / "logs" / "app.jsonl"
    append(log, json.dumps({"ts": 1767600000.5}), "{oops", json.dumps({"time": 1}), "{oops")
    loaded = load(path)
    daemon = Daemon(loaded.config, loaded.rules, clock=lambda: datetime(2026, 1, 5, 8, 1, tzinfo=UTC))
    daemon.scheduler.start(paused=True)
    caplog.set_level(logging.WARNING, "watcher.store.ingest")
    try:
        daemon.tick()
        body = daemon.operations.metrics.exposition()[0].decode()
    finally:
        daemon.stop()
    assert 'watcher_ingest_rejected_total{reason="not_json",source="app"} 2.0' in body
    assert 'watcher_ingest_rejected_total{reason="missing_timestamp",source="app"} 1.0' in body
    assert warnings(caplog) == [
        f"{log}:2: log line skipped (not_json): not JSON (and 1 more line skipped for not_json)",
        f"{log}:3: log line skipped (missing_timestamp): no time field 'ts'",
    ]

"""``watcher ingest`` into the embedded store: loading a file twice stores it once, skipped lines
are summarised, and a file with no usable line is an error naming the time field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.store.embedded import EmbeddedStore

GOOD = [json.dumps({"ts": f"2026-01-05T08:00:0{i}Z", "status": 200}) for i in range(3)]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text("sources:\n  app: {store: embedded, path: logs.duckdb, time_field: ts}\n")
    return path


def ingest(config: Path, *args: str) -> int:
    return main(["ingest", "--config", str(config), "--source", "app", *args])


def rows(config: Path) -> int:
    store = EmbeddedStore(config.parent / "logs.duckdb")
    try:
        return store.row_count()
    finally:
        store.close()


def write(path: Path, lines: list[str], mode: str = "w") -> Path:
    with path.open(mode) as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def test_a_file_ingested_twice_is_stored_once(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path / "app.jsonl", GOOD)
    assert ingest(config, str(log)) == 0
    assert ingest(config, str(log)) == 0
    assert rows(config) == 3
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{log}: 3 of 3 documents loaded into {tmp_path / 'logs.duckdb'}",
        f"{log}: already ingested into {tmp_path / 'logs.duckdb'} (3 lines); nothing loaded "
        "(--again loads it again)",
    ]


def test_lines_appended_since_are_loaded_alone(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path / "app.jsonl", GOOD)
    ingest(config, str(log))
    write(log, [GOOD[0], "{oops"], mode="a")
    assert ingest(config, str(log)) == 1
    assert rows(config) == 4
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == (
        f"{log}: 1 of 2 documents loaded (new lines after line 3) into {tmp_path / 'logs.duckdb'}"
    )
    assert err == f"skipped 1 line: 1 not JSON; first at {log}:5\n"


def test_again_loads_a_file_once_more(config: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "app.jsonl", GOOD)
    ingest(config, str(log))
    assert ingest(config, "--again", str(log)) == 0
    assert rows(config) == 6


def test_a_file_without_any_usable_line_is_an_error_naming_the_time_field(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(
        tmp_path / "app.jsonl", [json.dumps({"@timestamp": "2026-01-05T08:00:00Z", "status": 200})] * 2
    )
    assert ingest(config, str(log)) == 2
    assert capsys.readouterr().err == (
        f"watcher ingest: no usable log lines in {log} (skipped 2 lines: 2 missing timestamp "
        f"(field 'ts'); first at {log}:1); looked for the time field 'ts', saw the fields: "
        "@timestamp, status (set time_field)\n"
    )


def test_an_empty_file_is_an_error(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path / "app.jsonl", [])
    assert ingest(config, str(log)) == 2
    assert capsys.readouterr().err == f"watcher ingest: no log lines in {log}\n"


def test_numeric_timestamps_need_time_format(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path / "app.jsonl", [*GOOD, json.dumps({"ts": 12345, "status": 200})])
    assert ingest(config, str(log)) == 1
    assert capsys.readouterr().err == (
        f"skipped 1 line: 1 numeric timestamp without time_format; first at {log}:4\n"
    )
    config.write_text(
        "sources:\n  app: {store: embedded, path: logs.duckdb, time_field: ts, time_format: epoch_ms}\n"
    )
    other = write(tmp_path / "epoch.jsonl", [json.dumps({"ts": 1767600000000, "status": 200})])
    assert ingest(config, str(other)) == 0
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    assert store.time_range() == (
        datetime(2026, 1, 5, 8, tzinfo=UTC),
        datetime(2026, 1, 5, 8, 0, 2, tzinfo=UTC),
    )
    store.close()

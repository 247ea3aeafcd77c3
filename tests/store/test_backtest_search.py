"""``watcher backtest --source`` against Elasticsearch/OpenSearch (osmem-server): the same
notifications as a backtest of the same log file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_backtest import (
    FLATLINE_RANGE,
    FLATLINE_RECORDS,
    FLATLINE_SUMMARY,
    flatline_lines,
    flatline_setup,
    records,
)
from watcher.cli import main


def _source(search_server, index: str) -> str:
    auth = ""
    if search_server.username:
        auth = f", username: {search_server.username}, password: {search_server.password}"
    store = "opensearch" if not search_server.external else "elasticsearch"
    return f"{{store: {store}, hosts: ['{search_server.url}'], index: '{index}', time_field: ts{auth}}}"


def test_backtest_against_a_search_source(
    tmp_path: Path, search_server, fresh_index, capsys: pytest.CaptureFixture[str]
) -> None:
    index = fresh_index("watcher-backtest")
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    config = str(flatline_setup(tmp_path, _source(search_server, index)))
    assert main(["ingest", "--config", config, "--source", "app", "--index", index, str(log)]) == 0
    capsys.readouterr()
    code = main(["backtest", "--config", config, "--source", "app", *FLATLINE_RANGE])
    out, err = capsys.readouterr()
    assert (code, err) == (0, FLATLINE_SUMMARY)
    assert records(out) == FLATLINE_RECORDS


def test_backtest_against_a_search_source_without_data(
    tmp_path: Path, search_server, fresh_index, capsys: pytest.CaptureFixture[str]
) -> None:
    index = fresh_index("watcher-backtest")
    search_server.create_index(index, {"ts": {"type": "date"}}, [])
    config = str(flatline_setup(tmp_path, _source(search_server, index)))
    assert main(["backtest", "--config", config, "--source", "app", *FLATLINE_RANGE]) == 2
    assert capsys.readouterr().err == (
        "watcher backtest: source 'app' has no documents from 2026-01-05T08:05:00Z to 2026-01-05T08:44:00Z "
        "(time field 'ts')\n"
    )

"""Coverage of a search index (osmem-server): a window reaching before its first document, or before
the source's ``since:``, is "not enough data", as for the embedded store. Before, Elasticsearch and
OpenSearch counted every window as covered and a backtest of an index fired a flatline at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.test_backtest import FLATLINE_RECORDS, flatline_lines, flatline_setup, records
from tests.cli.test_check_validation import check
from tests.store.test_backtest_search import _source
from watcher.cli import main

FIRST = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TOTAL_FLATLINE = (
    "{name: total-flatline, source: app, every: 1m, window: 5m, delay: 0s, signal: count,"
    " flatline: {below: 10}, severity: critical}\n"
)
FROM_THE_FIRST_LINE = ["--start", "2026-01-05T08:00:00Z", "--end", "2026-01-05T08:44:00Z"]


def test_the_first_document_is_asked_once_and_kept(
    client: str, make_store, search_server, fresh_index
) -> None:
    index = fresh_index("watcher-coverage")
    search_server.create_index(index, {"ts": {"type": "date"}}, [])
    clock = [0.0]
    store = make_store(client, index, time_field="ts", clock=lambda: clock[0])
    assert store.first_time() is None  # an empty index covers nothing ...
    search_server.create_index(
        f"{index}-b", None, [{"ts": "2026-01-05T08:00:07.250Z"}, {"ts": "2026-01-05T09:00:00Z"}]
    )
    store = make_store(client, f"{index}*", time_field="ts", clock=lambda: clock[0])
    trips = store.round_trips
    assert store.first_time() == datetime(2026, 1, 5, 8, 0, 7, 250000, tzinfo=UTC)
    assert store.first_time() == datetime(2026, 1, 5, 8, 0, 7, 250000, tzinfo=UTC)
    assert store.round_trips == trips + 1  # one search, then kept
    search_server.delete_index(f"{index}-b")


def _backtest(
    tmp_path: Path, search_server, index: str, capsys: pytest.CaptureFixture[str], since: str = ""
) -> str:
    """Ingest the flatline log into ``index``, then backtest it from its first line with a total
    and a per-service flatline; its standard output."""
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    source = _source(search_server, index)
    if since:
        source = source[:-1] + f", since: {since}}}"  # a YAML timestamp
    config = str(flatline_setup(tmp_path, source))
    (tmp_path / "rules" / "total.yaml").write_text(TOTAL_FLATLINE)
    assert main(["ingest", "--config", config, "--source", "app", "--index", index, str(log)]) == 0
    capsys.readouterr()
    assert main(["backtest", "--config", config, "--source", "app", *FROM_THE_FIRST_LINE]) == 0
    return capsys.readouterr().out


def test_a_backtest_of_an_index_from_its_first_document_fires_no_flatline(
    tmp_path: Path, search_server, fresh_index, capsys: pytest.CaptureFixture[str]
) -> None:
    index = fresh_index("watcher-coverage")
    out = _backtest(tmp_path, search_server, index, capsys)
    # Before: the total flatline fired at 08:00, its window 07:55-08:00 before the first document.
    assert records(out) == FLATLINE_RECORDS
    nodata = [r for r in map(json.loads, out.splitlines()) if r["event"] == "nodata"]
    assert [(r["rule"], r["state"], r["at"]) for r in nodata] == [
        ("total-flatline", "entered", "2026-01-05T08:00:00Z"),
        ("total-flatline", "left", "2026-01-05T08:05:00Z"),
    ]
    assert nodata[0]["reason"] == (
        "not enough data: the window from 2026-01-05 07:55:00 UTC reaches before the first log line "
        "the store holds (2026-01-05 08:00:00 UTC)"
    )


def test_since_on_the_source_replaces_the_first_document(
    tmp_path: Path, search_server, fresh_index, capsys: pytest.CaptureFixture[str]
) -> None:
    index = fresh_index("watcher-coverage")
    out = _backtest(tmp_path, search_server, index, capsys, since="2026-01-05T08:20:00Z")
    nodata = [r for r in map(json.loads, out.splitlines()) if r["event"] == "nodata"]
    # Every rule is blind until its windows start at 08:20; b going silent at 08:30 still fires.
    assert [(r["rule"], r["group"], r["state"], r["at"]) for r in nodata] == [
        ("total-flatline", {}, "entered", "2026-01-05T08:00:00Z"),
        ("total-flatline", {}, "left", "2026-01-05T08:25:00Z"),
    ]
    assert records(out) == FLATLINE_RECORDS


@pytest.mark.parametrize(
    ("since", "shown"),
    [
        ("yesterday", "'yesterday'"),
        ("2026-01-05T08:00:00", "'2026-01-05T08:00:00'"),  # YAML's own timestamp, without a zone
        ("'2026-01-05 08:00'", "'2026-01-05 08:00'"),
        ("2026-01-05", "'2026-01-05'"),
    ],
)
def test_a_bad_since_is_refused_at_its_position(tmp_path: Path, since: str, shown: str) -> None:
    code, errors = check(
        tmp_path,
        "sources:\n"
        "  app: {store: opensearch, hosts: ['http://127.0.0.1:9200'], index: logs,\n"
        f"        since: {since}}}\n",
    )
    assert code == 1
    assert errors[0] == (
        f"watcher.yaml:3:16: since {shown} must be an ISO 8601 time with a time zone, "
        "e.g. 2026-01-05T08:00:00Z"
    )

"""``watcher ingest`` and the bulk loader: documents land in the index, every rejected line is
reported with its number and reason, and the loaded log answers queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from watcher.cli import main
from watcher.query import Count, CountWhere, Query, Window
from watcher.query_filters import Eq
from watcher.store.bulk import ingest_index, load_lines

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=5))

LINES = [
    json.dumps({"@timestamp": "2026-01-05T08:00:01Z", "service": "api", "status": 200}),
    "{not json",
    json.dumps({"@timestamp": 1767600062, "service": "api", "status": 503}),  # epoch seconds: 08:01:02
    "",
    json.dumps([1, 2]),
    json.dumps({"service": "api", "status": 200}),
    json.dumps({"@timestamp": "yesterday", "service": "api"}),
    json.dumps({"@timestamp": "2026-01-05T08:02:00.250+01:00", "service": "web", "status": 200}),  # 07:02 UTC
    json.dumps({"@timestamp": "2026-01-05T08:03:00Z", "service": "api", "status": "teapot"}),
]


def test_bulk_load_reports_each_rejected_document(make_store, client, fresh_index):
    index = fresh_index("watcher-bulk")
    store = make_store(client, index, time_format="epoch_s")
    report = load_lines(store, LINES, index, batch_size=2)
    assert report.lines_read == 8
    assert report.indexed == 3
    assert report.rejected == {
        "not_json": 1,
        "not_an_object": 1,
        "missing_timestamp": 1,
        "bad_timestamp": 1,
        "mapper_parsing_exception": 1,
    }
    assert [line for line, _ in report.examples] == [2, 5, 6, 7, 9]
    assert report.examples[-1][1].startswith("mapper_parsing_exception: failed to parse field [status]")
    results = store.evaluate(
        [
            Query("all", WINDOW, {"n": Count(), "errors": CountWhere(Eq("status", 503))}),
            Query("earlier", Window(T0 - timedelta(hours=1), T0), {"n": Count()}, Eq("service", "web")),
        ]
    )
    assert results[0].groups[0].values == {"n": 2, "errors": 1}  # epoch seconds read as seconds
    assert results[1].groups[0].values == {"n": 1}  # +01:00 read as an offset


def test_ingest_creates_the_index_with_exact_strings(search_server, make_store, client, fresh_index):
    index = fresh_index("watcher-bulk")
    store = make_store(client, index, time_format="epoch_s")
    load_lines(
        store, [json.dumps({"@timestamp": 1767600000, "service": "api", "latency_ms": 80.1, "n": 3})], index
    )
    mapping = search_server.request("GET", f"/{index}/_mapping")[index]["mappings"]["properties"]
    assert {name: spec["type"] for name, spec in mapping.items()} == {
        "@timestamp": "date",
        "service": "keyword",
        "latency_ms": "double",
        "n": "long",
    }


@pytest.mark.parametrize(
    ("pattern", "index"),
    [
        ("ml-api-*", "ml-api-ingest"),
        ("logs", "logs"),
        ("a-*,b-*", "a-ingest"),
        ("logs-*-prod", "logs-ingest-prod"),
    ],
)
def test_ingest_index_follows_the_pattern(pattern, index):
    assert ingest_index(pattern) == index


def _config(tmp_path, search_server, index_pattern: str, time_format: str = "epoch_s") -> str:
    config = tmp_path / "watcher.yaml"
    store = "opensearch" if not search_server.external else "elasticsearch"
    auth = ""
    if search_server.username:
        auth = f", username: {search_server.username}, password: {search_server.password}"
    config.write_text(
        "sources:\n"
        f"  logs: {{store: {store}, hosts: ['{search_server.url}'], index: '{index_pattern}',"
        f" time_format: {time_format}{auth}}}\n"
        f"  local: {{store: embedded, path: {tmp_path / 'logs.duckdb'}, time_format: {time_format}}}\n"
        f"state: {{path: {tmp_path / 'state.sqlite'}}}\n"
    )
    return str(config)


def test_watcher_ingest_command(tmp_path, search_server, fresh_index, capsys):
    prefix = fresh_index("watcher-cli")
    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join(LINES) + "\n")
    config = _config(tmp_path, search_server, f"{prefix}-*")
    index = f"{prefix}-ingest"
    code = main(["ingest", "--config", config, "--source", "logs", str(log)])
    out, err = capsys.readouterr()
    search_server.delete_index(index)
    assert code == 1
    assert out.startswith(f"{log}: 3 of 8 documents loaded into {index} (")
    lines = err.splitlines()
    assert lines[0] == (
        "skipped 5 lines: 1 not JSON, 1 not a JSON object, 1 missing timestamp (field '@timestamp'), "
        f"1 unparsable timestamp (field '@timestamp'), 1 mapper_parsing_exception; first at {log}:2"
    )
    assert lines[1] == "  line 2: not JSON"
    assert lines[-1].startswith("  line 9: mapper_parsing_exception: failed to parse field [status]")


def test_watcher_ingest_into_the_embedded_store(tmp_path, search_server, capsys):
    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join(LINES[:3]) + "\n")
    code = main(["ingest", "--config", _config(tmp_path, search_server, "x"), "--source", "local", str(log)])
    assert code == 1
    out, err = capsys.readouterr()
    assert out == f"{log}: 2 of 3 documents loaded into {tmp_path / 'logs.duckdb'}\n"
    assert err == f"skipped 1 line: 1 not JSON; first at {log}:2\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope"], "watcher ingest: unknown source 'nope' (defined: local, logs)"),
        (
            ["--source", "logs", "--index", "x", "missing.jsonl"],
            "watcher ingest: file missing.jsonl not found",
        ),
    ],
)
def test_watcher_ingest_usage_errors(tmp_path, search_server, capsys, args, message):
    log = tmp_path / "requests.jsonl"
    log.write_text("")
    if args[-1] != "missing.jsonl":
        args = [*args, str(log)]
    code = main(["ingest", "--config", _config(tmp_path, search_server, "x"), *args])
    assert code == 2
    assert capsys.readouterr().err.strip() == message


def test_watcher_ingest_with_the_store_down(tmp_path, capsys):
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "sources:\n  logs: {store: opensearch, hosts: ['http://127.0.0.1:9'], index: 'l-*', max_retries: 0}\n"
    )
    log = tmp_path / "requests.jsonl"
    log.write_text(LINES[0] + "\n")
    code = main(["ingest", "--config", str(config), "--source", "logs", str(log)])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "watcher ingest: cannot reach opensearch at http://127.0.0.1:9 (index l-*): "
        "connection refused (after 0 retries)"
    )


def test_watcher_ingest_into_an_index_twice_loads_the_file_once(tmp_path, search_server, fresh_index, capsys):
    prefix = fresh_index("watcher-again")
    index = f"{prefix}-ingest"
    log = tmp_path / "requests.jsonl"
    log.write_text(LINES[0] + "\n" + LINES[2] + "\n")
    config = _config(tmp_path, search_server, f"{prefix}-*")
    ingest = ["ingest", "--config", config, "--source", "logs", str(log)]
    try:
        assert main(ingest) == 0
        assert main(ingest) == 0
        assert search_server.request("GET", f"/{index}/_count")["count"] == 2
        with log.open("a") as handle:
            handle.write(LINES[7] + "\n")
        assert main(ingest) == 0
        assert search_server.request("GET", f"/{index}/_count")["count"] == 3
        assert main([*ingest[:-1], "--again", str(log)]) == 0
        assert search_server.request("GET", f"/{index}/_count")["count"] == 6
    finally:
        search_server.delete_index(index)
    out = capsys.readouterr().out.splitlines()
    assert (
        out[1] == f"{log}: already ingested into {index} (2 lines); nothing loaded (--again loads it again)"
    )
    assert out[2].startswith(f"{log}: 1 of 1 documents loaded (new lines after line 2) into {index} (")
    assert out[3].startswith(f"{log}: 3 of 3 documents loaded into {index} (")


def test_an_index_created_anew_forgets_what_was_loaded(tmp_path, search_server, fresh_index):
    prefix = fresh_index("watcher-anew")
    index = f"{prefix}-ingest"
    log = tmp_path / "requests.jsonl"
    log.write_text(LINES[0] + "\n")
    ingest = [
        "ingest",
        "--config",
        _config(tmp_path, search_server, f"{prefix}-*"),
        "--source",
        "logs",
        str(log),
    ]
    assert main(ingest) == 0
    search_server.delete_index(index)
    try:
        assert main(ingest) == 0
        assert search_server.request("GET", f"/{index}/_count")["count"] == 1
    finally:
        search_server.delete_index(index)

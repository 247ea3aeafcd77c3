"""``watcher check`` on ``ha:``: replicas cannot share an embedded (DuckDB) source nor a SQLite state
file, and the lease must outlast heartbeats; each mistake positioned in watcher.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_check_validation import check

PG_STATE = "state: {url: 'postgresql://watcher:secret@db.example:5432/watcher'}\n"
SEARCH = "sources:\n  logs: {store: opensearch, hosts: ['http://127.0.0.1:9200'], index: 'logs-*'}\n"


def test_an_embedded_source_cannot_be_shared_by_replicas_on_a_postgresql_state(tmp_path: Path) -> None:
    config = "sources:\n  app: {store: embedded}\n" + PG_STATE + "ha: {replicas: 3}\n"
    assert check(tmp_path, config) == (
        1,
        [
            "watcher.yaml:2:16: source 'app' is embedded (a DuckDB file on one machine) and ha.replicas "
            "is 3: replicas cannot share it; use an Elasticsearch/OpenSearch source, or ha.replicas: 1"
        ],
    )


def test_one_replica_with_an_embedded_source_and_replicas_on_a_search_source_are_fine(tmp_path: Path) -> None:
    assert check(tmp_path, "sources:\n  app: {store: embedded}\n" + PG_STATE + "ha: {replicas: 1}\n")[0] == 0
    assert check(tmp_path, SEARCH + PG_STATE + "ha: {replicas: 3, partitions: 128}\n")[0] == 0


def test_ha_needs_a_postgresql_state(tmp_path: Path) -> None:
    assert check(tmp_path, SEARCH + "ha: {replicas: 2}\n") == (
        1,
        ["watcher.yaml:3:5: ha needs a PostgreSQL state (state.url): a SQLite state file serves one replica"],
    )


@pytest.mark.parametrize(
    ("ha", "message"),
    [
        (
            "{heartbeat: 10s, lease: 15s}",
            "lease 15s must be at least two heartbeats (20s): one late heartbeat would lose every partition",
        ),
        ("{replicas: 4, partitions: 3}", "partitions (3) must be at least replicas (4): a replica without a "
         "partition evaluates nothing"),
        ("{replicas: 0}", "'ha.replicas' must be >= 1, got 0"),
    ],
)  # fmt: skip
def test_lease_and_partition_settings_that_cannot_work(tmp_path: Path, ha: str, message: str) -> None:
    code, errors = check(tmp_path, SEARCH + PG_STATE + f"ha: {ha}\n")
    assert code == 1
    assert len(errors) == 1
    assert errors[0].startswith("watcher.yaml:4:")
    assert message in errors[0]

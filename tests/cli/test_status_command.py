"""``watcher status`` on a real PostgreSQL state: the live replicas with their partitions and rules,
a dead one, and the partitions no live replica holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import HaConfig
from watcher.incidents.state import StateStore
from watcher.process.partitions import Replica, partition_of
from watcher.state.postgres import PostgresBackend

HA = HaConfig(replicas=3, partitions=8, heartbeat=timedelta(seconds=10), lease=timedelta(seconds=30))
RULES = ("api-5xx", "latency-p99", "checkout-flatline", "login-errors")


def config(folder: Path, url: str) -> Path:
    (folder / "rules").mkdir()
    for name in RULES:
        (folder / "rules" / f"{name}.yaml").write_text(
            f"name: {name}\nsource: logs\nevery: 1m\nwindow: 5m\nsignal: count\nthreshold: {{above: 10}}\n"
        )
    path = folder / "watcher.yaml"
    path.write_text(
        "sources:\n  logs: {store: opensearch, hosts: ['http://127.0.0.1:9200'], index: 'logs-*'}\n"
        f"state: {{url: '{url}'}}\n"
        "ha: {replicas: 3, partitions: 8}\n"
    )
    return path


def replica(url: str, name: str, at: datetime) -> Replica:
    return Replica(StateStore(PostgresBackend(url)), HA, lambda: at, replica_id=name)


def test_status_lists_replicas_their_partitions_and_rules(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    gone = replica(postgres_url, "c", now - timedelta(minutes=2))
    gone.beat()  # c took every partition two minutes ago, then died: its leases ended 90 s ago
    a, b = replica(postgres_url, "a", now), replica(postgres_url, "b", now)
    for beating in (a, b, a, b):
        beating.beat()
    assert sorted(a.held) == [0, 1, 2, 3]
    assert sorted(b.held) == [4, 5, 6, 7]
    path = config(tmp_path, postgres_url)

    assert main(["status", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 of 3 replicas alive on postgresql://postgres:***@127.0.0.1:")
    assert lines[0].endswith("; 8 partitions, heartbeat 10s, lease 30s")
    assert lines[1].split() == [
        "REPLICA",
        "HOST",
        "PID",
        "LAST",
        "SEEN",
        "STATE",
        "PARTITIONS",
        "RULES",
        "HOLDS",
    ]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["a"][-4:] == ["alive", "4", str(rules_in(range(4))), "0-3"]
    assert rows["b"][-4:] == ["alive", "4", str(rules_in(range(4, 8))), "4-7"]
    assert rows["c"][4:] == ["ago", "dead", "0", "0"]
    assert len(lines) == 5  # every partition is held: no "not held" line

    b.leave()  # b stops cleanly: its partitions are free until a live replica's next beat
    assert main(["status", "-c", str(path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["alive"], r["partitions"]) for r in shown["replicas"]] == [
        ("a", True, 4),
        ("c", False, 0),
    ]
    assert [p["owner"] for p in shown["partitions"]] == ["a"] * 4 + [None] * 4
    assert sorted(name for p in shown["partitions"] for name in p["rules"]) == sorted(RULES)
    assert main(["status", "-c", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"not held: partitions 4-7 ({rules_in(range(4, 8))} rules wait "
        "for the next heartbeat of a live replica)"
    )


def rules_in(partitions: range) -> int:
    return sum(partition_of(name, 8) in partitions for name in RULES)


def test_without_ha_status_says_one_daemon_holds_the_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text("sources:\n  app: {store: embedded}\n")
    assert main(["status", "-c", str(path)]) == 0
    assert capsys.readouterr().out.startswith("one daemon: ha is not set in ")

"""A backtest's rules shared among processes (``watcher.replay_workers``): what one engine would
tell, or a clear failure; one process when the rules' transitions depend on notifications."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from watcher.demo import DEMO_START, write_log
from watcher.detect import DETECTORS
from watcher.replay import Replay
from watcher.rules.loader import load_config, load_rules
from watcher.store.embedded import EmbeddedStore

ROOT = Path(__file__).parents[1]
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def demo_hour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "requests.jsonl"
    write_log(path, length=2 * HOUR)
    return path


def test_a_worker_that_fails_stops_the_replay_with_its_reason(demo_hour: Path, tmp_path: Path) -> None:
    config = load_config(ROOT / "watcher.yaml")
    rules = load_rules([ROOT / "rules"], config).rules
    replay = Replay(config, rules, [demo_hour], tmp_path / "replay", processes=2)
    try:
        assert len(replay.shares) == 2
        for file in replay.files:
            file.path.unlink()  # this process reads its open file; the worker cannot open it
        with pytest.raises(RuntimeError, match=r"(?s)backtest worker failed:.*IOException"):
            list(replay.ticks(DEMO_START + HOUR, DEMO_START + 2 * HOUR))
    finally:
        replay.close()


def test_a_rule_with_its_own_repeat_interval_keeps_the_replay_in_one_process(
    demo_hour: Path, tmp_path: Path
) -> None:
    config = load_config(ROOT / "watcher.yaml")
    rules = list(load_rules([ROOT / "rules"], config).rules)
    rules[0] = rules[0].model_copy(update={"repeat_interval": timedelta(minutes=30)})
    replay = Replay(config, rules, [demo_hour], tmp_path / "replay", processes=2)
    try:
        assert replay.shares == [rules]
        assert replay.workers == []
    finally:
        replay.close()


def test_a_replays_own_store_is_written_uncompressed_with_the_rows_a_daemons_store_holds(
    demo_hour: Path, tmp_path: Path
) -> None:
    """The logs a replay loads are its own throw-away copy: not compressed at each chunk's commit
    (the ingestion's critical path), its field columns' values computed at insert rather than
    when classifying; the rows, documents and field columns are a daemon's store's."""
    config = load_config(ROOT / "watcher.yaml")
    rules = load_rules([ROOT / "rules"], config).rules
    replay = Replay(config, rules, [demo_hour], tmp_path / "replay")
    path = replay.stores["demo"].path
    replay.close()
    daemon = EmbeddedStore(
        tmp_path / "daemon.duckdb", config.sources["demo"].time_field, read_chunk=64 * 1024
    )
    at = DEMO_START  # the fields a rule reads do not depend on when
    daemon.keep_columns([q for rule in rules for q in DETECTORS[rule.detector].queries(rule, at)])
    daemon.ingest_files([str(demo_hour)])
    daemon.close()
    rows = "SELECT count(*), sum(hash(COLUMNS(*)) % 1000003) FROM logs"
    segments = (
        "SELECT DISTINCT compression FROM pragma_storage_info('logs') "
        "WHERE column_name = 'doc' AND segment_type = 'VARCHAR'"
    )
    with (
        duckdb.connect(str(path), read_only=True) as own,
        duckdb.connect(str(tmp_path / "daemon.duckdb")) as kept,
    ):
        assert len(own.execute("DESCRIBE logs").fetchall()) > 2  # the rules' field columns
        assert own.execute("DESCRIBE logs").fetchall() == kept.execute("DESCRIBE logs").fetchall()
        assert own.execute(rows).fetchall() == kept.execute(rows).fetchall()
        assert {row[0] for row in own.execute(segments).fetchall()} == {"Uncompressed"}
        assert "Uncompressed" not in {row[0] for row in kept.execute(segments).fetchall()}

"""A backtest's rules shared among processes (``watcher.replay_workers``): what one engine would
tell, or a clear failure; one process when the rules' transitions depend on notifications."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.demo import DEMO_START, write_log
from watcher.replay import Replay
from watcher.rules.loader import load_config, load_rules

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

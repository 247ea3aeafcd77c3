"""The daemon on a PostgreSQL state (``state: {url: ...}``): a tick's incident, its delivered
notification and the checkpoint land in the database; a second daemon on it is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.daemon import write_config
from watcher.cli.common import load
from watcher.config import StateConfig
from watcher.incidents.model import State
from watcher.incidents.state import StateStoreError
from watcher.process.daemon import Daemon
from watcher.state.factory import open_state

NOW = datetime(2026, 1, 5, 8, 1, tzinfo=UTC)


def test_a_tick_commits_its_incident_outbox_and_checkpoint_to_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    rule = {"name": "errors", "source": "app", "every": "1m", "window": "5m", "signal": "count"}
    path = write_config(
        tmp_path, [{**rule, "threshold": {"above": 2}, "severity": "warning"}], state={"url": postgres_url}
    )
    (tmp_path / "logs" / "app.jsonl").write_text(
        "".join(json.dumps({"ts": NOW.timestamp() - 30 - n}) + "\n" for n in range(5))
    )
    loaded = load(path)
    now = [NOW]
    daemon = Daemon(loaded.config, loaded.rules, clock=lambda: now[0])
    daemon.scheduler.start(paused=True)
    try:
        with pytest.raises(StateStoreError, match="another watcher daemon"):
            Daemon(loaded.config, loaded.rules, clock=lambda: NOW)
        daemon.tick()
        now[0] += timedelta(seconds=2)  # the group's group_wait (1s) is over
        daemon.drain()
    finally:
        daemon.stop()
    assert not (tmp_path / "data" / "state.sqlite").exists()
    with open_state(StateConfig(url=postgres_url)) as state:
        (incident,) = state.incidents()
        assert (incident.rule, incident.state) == ("errors", State.FIRING)
        assert state.checkpoint("errors") == NOW
        last = state.last_notification(incident.fingerprint)
        assert last is not None
        assert last.status == "delivered"

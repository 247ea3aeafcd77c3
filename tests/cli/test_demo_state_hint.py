"""After ``watcher demo``, its last lines say where its state is and how to look at it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.cli.demo import _where_the_state_is
from watcher.incidents.model import Incident, State, fingerprint
from watcher.incidents.state import StateStore

AT = datetime(2026, 1, 5, 9, 4, tzinfo=UTC)


def test_the_last_lines_name_a_config_that_shows_the_demo_incidents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo" / "replay"
    workdir.mkdir(parents=True)
    group = {"model_version": "v3"}
    with StateStore(workdir / "state.sqlite") as state:
        rule = "prediction-5xx-rate"
        firing = Incident(fingerprint=fingerprint(rule, group), rule=rule, group=group, labels={},
                          annotations={}, severity="critical", state=State.FIRING, value=0.2,
                          threshold=0.05, started_at=AT, fired_at=AT)  # fmt: skip
        state.commit([firing])
    _where_the_state_is(workdir, ["demo"])
    last = capsys.readouterr().out.splitlines()[-2:]
    assert last == [
        f"The demo's incidents and notifications are in {workdir / 'state.sqlite'}; to look at them:",
        f"  watcher incidents --config {workdir / 'watcher.yaml'}",
    ]
    assert main(last[1].split()[1:]) == 0
    assert "prediction-5xx-rate  model_version=v3" in capsys.readouterr().out

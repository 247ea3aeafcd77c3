"""``watcher incidents``: incidents with their last notification and its delivery status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.cli import main
from watcher.config import Route
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import Dispatcher
from watcher.routing.matchers import Matcher
from watcher.routing.silences import SilenceStore, new_silence

NOW = datetime.now(UTC).replace(microsecond=0)
SEC = timedelta(seconds=1)
CONFIG = """\
sources:
  local: {store: embedded}
state: {path: data/state.sqlite}
receivers:
  slack: {console: {}}
route: {receiver: slack, group_by: ["..."], group_wait: 10m}
"""


class Change:
    def __init__(self, incident: Incident, event: Event, at: datetime) -> None:
        self.incident, self.event, self.at = incident, event, at


def incident(model: str, state: State = State.FIRING, **fields: Any) -> Incident:
    group = {"model": model}
    values: dict[str, Any] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", "model": model},
        "annotations": {},
        "severity": "critical",
        "state": state,
        "value": 0.25,
        "threshold": 0.05,
        "started_at": NOW - 3600 * SEC,
        "fired_at": NOW - 3600 * SEC,
    }
    return Incident(**(values | fields))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text(CONFIG)
    with StateStore(tmp_path / "data" / "state.sqlite") as state:
        dispatcher = Dispatcher(state, Route.model_validate({"receiver": "slack", "group_by": ["..."]}))
        fired = [incident(m) for m in ("delivered", "retrying", "dead")]
        state.commit(fired)
        plan = dispatcher.plan([Change(i, Event.FIRING, i.started_at) for i in fired], NOW)
        state.commit(notifications=plan.notifications, writes=[plan.write])
        ids = {n.incidents[0].group["model"]: n.id for n in plan.notifications}
        state.mark_delivered(ids["delivered"], NOW)
        state.mark_failed(ids["retrying"], NOW, "slack: ratelimited (HTTP 429)", NOW + 30 * SEC)
        state.mark_failed(ids["dead"], NOW, "gave up after 10 attempts: HTTP 500", None)
        waiting = incident("waiting", started_at=NOW, fired_at=NOW)
        state.commit([waiting])
        later = Dispatcher(
            state, Route.model_validate({"receiver": "slack", "group_wait": "10m", "group_by": ["..."]})
        )
        plan = later.plan([Change(waiting, Event.FIRING, NOW)], NOW)
        state.commit(writes=[plan.write])
        silenced = incident("silenced", labels={"rule": "api-5xx", "model": "silenced"})
        state.commit([silenced, incident("old", State.RESOLVED, resolved_at=NOW - 60 * SEC)])
        SilenceStore(state).add(new_silence([Matcher.parse("model=silenced")], NOW, NOW + 3600 * SEC, "ann",
                                            "known", NOW))  # fmt: skip
    return path


def statuses(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict[str, Any]]:
    assert main(["incidents", *args, "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {row["group"]["model"]: row for row in rows}


def test_each_incident_shows_its_last_notification_and_delivery(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = statuses(capsys, "-c", str(config))
    assert rows["delivered"]["status"].startswith("firing to slack: delivered ")
    assert rows["retrying"]["status"].startswith(
        "firing to slack: pending, attempt 1 failed (slack: ratelimited (HTTP 429)), next "
    )
    assert (
        rows["dead"]["status"]
        == "firing to slack: dead after 1 attempts: gave up after 10 attempts: HTTP 500"
    )
    assert rows["dead"]["notification"]["status"] == "dead"
    assert rows["waiting"]["status"].startswith("waiting for its group (flush ")
    assert rows["silenced"]["status"] == f"not sent: {rows['silenced']['muted']}"
    assert rows["silenced"]["muted"].startswith("silenced by ")
    assert rows["old"]["state"] == "resolved"


def test_state_filter_and_text_table(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert set(statuses(capsys, "-c", str(config), "--state", "resolved")) == {"old"}
    assert main(["incidents", "-c", str(config), "--state", "firing"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["STATE", "RULE", "GROUP", "SINCE", "VALUE", "LAST", "NOTIFICATION"]
    assert len(out) == 1 + 5 + 1
    assert out[-1] == "1 dead letter: delivery gave up (status 'dead' above)"
    assert any(line.startswith("firing (muted)  api-5xx  model=silenced") for line in out)


def test_without_a_state_file_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(CONFIG)
    assert main(["incidents", "-c", str(path)]) == 0
    assert (
        capsys.readouterr().out
        == f"no incidents: no state file at {tmp_path / 'data' / 'state.sqlite'} yet (state.path of {path}); "
        "`watcher run` creates it, and `watcher demo` prints where its own is\n"
    )

"""``watcher ack``: an ack from the command line stops the repeats until the incident changes."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StateAt
from watcher.cli import main
from watcher.config import Route
from watcher.incidents import acks
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.acknowledge import AlreadyAcknowledgedError, acknowledge
from watcher.routing.dispatch import Dispatcher

NOW = datetime.now(UTC).replace(microsecond=0)
SEC = timedelta(seconds=1)
HOUR = 3600 * SEC
CONFIG = """\
sources:
  local: {store: embedded}
state: {state}
receivers:
  slack: {slack: {token: "${ACK_TEST_SLACK_TOKEN}", channel: "#ml"}}
route: {receiver: slack, group_by: [rule], group_wait: 0s, group_interval: 5m, repeat_interval: 1h}
"""
ROUTE = Route.model_validate(
    {"receiver": "slack", "group_by": ["rule"], "group_wait": "0s", "group_interval": "5m",
     "repeat_interval": "1h"}
)  # fmt: skip


class Change:
    def __init__(self, incident: Incident, event: Event, at: datetime) -> None:
        self.incident, self.event, self.at = incident, event, at


def incident(model: str, **fields: Any) -> Incident:
    group = {"model_version": model}
    values: dict[str, Any] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", "model_version": model, "severity": "warning"},
        "annotations": {},
        "severity": "warning",
        "state": State.FIRING,
        "value": 0.25,
        "threshold": 0.05,
        "started_at": NOW - HOUR,
        "fired_at": NOW - HOUR,
    }
    return Incident(**(values | fields))


class Daemon:
    """The dispatcher as the daemon runs it, on the state file the command writes."""

    def __init__(self, state: StateStore) -> None:
        self.state, self.dispatcher = state, Dispatcher(state, ROUTE)

    def step(self, now: datetime, *changes: Change) -> list[Notification]:
        self.state.commit([change.incident for change in changes])
        plan = self.dispatcher.plan(changes, now)
        self.state.commit(notifications=plan.notifications, writes=[plan.write])
        return plan.notifications


@pytest.fixture
def config(tmp_path: Path, state_at: StateAt) -> Path:
    """watcher.yaml naming the test's state: a SQLite file, or PostgreSQL."""
    where = state_at.config.url or state_at.config.path
    path = tmp_path / "watcher.yaml"
    path.write_text(
        CONFIG.replace("{state}", json.dumps({"url" if state_at.config.url else "path": str(where)}))
    )
    return path


@pytest.fixture
def daemon(state_at: StateAt, config: Path) -> Iterator[Daemon]:
    state = state_at.open()
    running = Daemon(state)
    (first,) = running.step(
        NOW - HOUR, *(Change(incident(m), Event.FIRING, NOW - HOUR) for m in ("v3", "v4"))
    )
    assert first.event is Event.FIRING
    state.mark_delivered(first.id, NOW - HOUR)
    yield running
    state.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_ack_stops_the_repeat_until_the_incident_changes(
    config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    v3 = incident("v3")
    code, out, err = run(
        capsys, "ack", "-c", str(config), v3.fingerprint, "-m", "rolling back v3", "--by", "ann"
    )
    assert (code, err) == (0, "")
    assert out == f"acknowledged {v3.fingerprint} (api-5xx model_version=v3), 1 Slack update(s) queued\n"
    (said,) = [item.notification for item in daemon.state.due_notifications(NOW + HOUR, 10)]
    assert (said.event, said.receiver, said.incidents[0].fingerprint) == (
        Event.UPDATE,
        "slack",
        v3.fingerprint,
    )
    assert said.incidents[0].acknowledged_now
    assert said.incidents[0].ack is not None
    assert said.incidents[0].ack["by"] == "ann"

    # v4 is not acknowledged: the repeat still tells it, v3 among the group's incidents as acknowledged.
    (repeat,) = daemon.step(NOW + 1 * SEC)
    assert [i.group["model_version"] for i in repeat.incidents] == ["v3", "v4"]
    assert [i.ack is not None for i in repeat.incidents] == [True, False]
    assert run(capsys, "ack", "-c", str(config), "--rule", "api-5xx", "--group", "model_version=v4",
               "-m", "same")[0] == 0  # fmt: skip
    assert daemon.step(NOW + HOUR + 1 * SEC) == []  # both acknowledged: no repeat
    assert daemon.step(NOW + 3 * HOUR) == []

    rows = {row["group"]["model_version"]: row for row in _incidents(capsys, config)}
    assert rows["v3"]["ack"]["by"] == "ann"
    assert rows["v3"]["ack"]["message"] == "rolling back v3"
    code, table, _ = run(capsys, "incidents", "-c", str(config))
    assert "firing (acked)" in table
    assert "acknowledged by ann " in table
    assert ": rolling back v3]" in table

    # v3 escalates: the ack is undone and the change is told.
    worse = incident("v3", severity="critical", severity_from="warning")
    assert daemon.step(NOW + 3 * HOUR + 1 * SEC, Change(worse, Event.UPDATE, NOW + 3 * HOUR)) == []
    (told,) = daemon.step(NOW + 3 * HOUR + 300 * SEC)  # the group's next flush
    assert [(i.group["model_version"], i.ack is not None) for i in told.incidents] == [
        ("v3", False),
        ("v4", True),
    ]
    rows = {row["group"]["model_version"]: row for row in _incidents(capsys, config)}
    assert rows["v3"]["ack"] is None
    back = incident("v3")  # de-escalates: the old ack does not come back
    daemon.step(NOW + 3 * HOUR + 301 * SEC, Change(back, Event.UPDATE, NOW + 3 * HOUR + 301 * SEC))
    assert {r["group"]["model_version"]: r["ack"] for r in _incidents(capsys, config)}["v3"] is None


def test_an_ack_for_a_while_ends_and_the_repeats_come_back(
    config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.step(NOW)  # the repeat at NOW tells both again
    assert run(capsys, "ack", "-c", str(config), "--rule", "api-5xx", "-m", "on it", "--for", "2h")[0] == 0
    assert daemon.step(NOW + HOUR + 5 * SEC) == []
    (repeat,) = daemon.step(NOW + 2 * HOUR + 300 * SEC)
    assert [i.ack for i in repeat.incidents] == [None, None]


def test_undo_starts_the_repeats_again(
    config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.step(NOW)
    assert run(capsys, "ack", "-c", str(config), "--rule", "api-5xx", "-m", "on it")[0] == 0
    assert daemon.step(NOW + HOUR + 5 * SEC) == []
    code, out, _ = run(capsys, "ack", "-c", str(config), "--undo", "--rule", "api-5xx", "--by", "bob")
    assert code == 0
    v3, v4 = incident("v3").fingerprint, incident("v4").fingerprint
    assert out.splitlines() == [
        f"ack of {v3} (api-5xx model_version=v3) by {getpass.getuser()} undone, 1 Slack update(s) queued",
        f"ack of {v4} (api-5xx model_version=v4) by {getpass.getuser()} undone, 1 Slack update(s) queued",
    ]
    queued = _sent_in_order(daemon.state, NOW + 2 * HOUR)
    undone = [(n.event, n.receiver, i.fingerprint, i.ack, i.ack_undone) for n in queued for i in n.incidents
              if i.ack_undone is not None]  # fmt: skip
    assert [(event, receiver, fp, ack) for event, receiver, fp, ack, _ in undone] == [
        (Event.UPDATE, "slack", v3, None),
        (Event.UPDATE, "slack", v4, None),
    ]
    assert [(told["by"], told["message"], told["undone_by"]) for *_, told in undone] == [
        (getpass.getuser(), "on it", "bob")
    ] * 2
    assert len(daemon.step(NOW + HOUR + 300 * SEC)) == 1  # the next flush repeats


def test_an_ack_once_on_an_acknowledged_incident_records_nothing_on_either_backend(daemon: Daemon) -> None:
    """What the Slack button does (``once``): the upsert's own condition keeps the ack that holds,
    and replaces one that ended."""
    v3, ends = incident("v3"), NOW + 10 * SEC
    acknowledge(daemon.state, v3, "@ann", "", NOW, until=ends, receivers=["slack"], once=True)
    with pytest.raises(AlreadyAcknowledgedError, match=f"{v3.fingerprint} .* already acknowledged by @ann"):
        acknowledge(daemon.state, v3, "@bob", "", NOW + SEC, receivers=["slack"], once=True)
    assert [n.incidents[0].ack for n in _sent_in_order(daemon.state, NOW + SEC)] == [
        {"by": "@ann", "at": NOW.isoformat(), "message": "", "until": ends.isoformat()}
    ]
    acknowledge(daemon.state, v3, "@cy", "", ends, receivers=["slack"], once=True)
    with daemon.state.reading() as db:
        assert acks.load(db)[v3.fingerprint].by == "@cy"


def _sent_in_order(state: StateStore, now: datetime) -> list[Notification]:
    """Every queued notification, in the order the outbox sends them (one at a time per thread)."""
    sent: list[Notification] = []
    while due := state.due_notifications(now, 10):
        for item in due:
            state.mark_delivered(item.notification.id, now)
            sent.append(item.notification)
    return sent


def test_a_resolve_undoes_the_ack(config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    v3 = incident("v3")
    assert run(capsys, "ack", "-c", str(config), v3.fingerprint, "-m", "on it")[0] == 0
    done = incident("v3", state=State.RESOLVED, resolved_at=NOW)
    daemon.step(NOW + 2 * SEC, Change(done, Event.RESOLVED, NOW))
    again = incident("v3", started_at=NOW + HOUR, fired_at=NOW + HOUR)
    (fired,) = daemon.step(NOW + HOUR, Change(again, Event.FIRING, NOW + HOUR))
    assert [i.ack for i in fired.incidents] == [None, None]
    assert all(row["ack"] is None for row in _incidents(capsys, config))


def _incidents(capsys: pytest.CaptureFixture[str], config: Path) -> list[dict[str, Any]]:
    code, out, _ = run(capsys, "incidents", "-c", str(config), "--format", "json")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0123456789abcdef", "-m", "x"],
         "unknown fingerprint '0123456789abcdef' (see `watcher incidents --format json`)"),
        (["--rule", "nope", "-m", "x"], "no open incident of rule 'nope' (see `watcher incidents`)"),
        (["--rule", "api-5xx", "--group", "model_version=v9", "-m", "x"],
         "no open incident of rule 'api-5xx' model_version=v9 (see `watcher incidents`)"),
        (["--rule", "api-5xx", "--group", "v9", "-m", "x"],
         "--group 'v9': write LABEL=VALUE, e.g. model_version=v3"),
        (["--rule", "api-5xx", "-m", "x", "--for", "2hours"],
         "--for: invalid duration '2hours': use a number and a unit (ms, s, m, h, d, w), "
         "e.g. 30s, 5m, 1h30m"),
        (["--rule", "api-5xx", "-m", "x", "--for", "0s"], "--for must be longer than 0s, got '0s'"),
        (["--rule", "api-5xx"], 'an ack needs a message saying what you do about it: -m "…"'),
        (["-m", "x"], "name one incident by FINGERPRINT, or incidents by --rule (not both)"),
        (["0123456789abcdef", "--rule", "api-5xx", "-m", "x"],
         "name one incident by FINGERPRINT, or incidents by --rule (not both)"),
        (["0123456789abcdef", "--group", "a=b", "-m", "x"], "--group needs --rule"),
        (["--undo", "--replace", "--rule", "api-5xx"],
         "--undo takes an ack back; --replace takes one over: use one"),
        (["--undo", "--rule", "api-5xx"], "no ack to undo for "
         f"{incident('v3').fingerprint}, {incident('v4').fingerprint}"),
    ],
)  # fmt: skip
def test_bad_acks_are_refused_with_a_reason(
    config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(capsys, "ack", "-c", str(config), *args) == (2, "", f"watcher ack: {message}\n")


def test_a_resolved_incident_cannot_be_acknowledged(
    config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    done = incident("v3", state=State.RESOLVED, resolved_at=NOW)
    daemon.step(NOW, Change(done, Event.RESOLVED, NOW))
    assert run(capsys, "ack", "-c", str(config), done.fingerprint, "-m", "x") == (
        2,
        "",
        f"watcher ack: incident {done.fingerprint} (api-5xx) is resolved: only a firing (or nodata, error) "
        "incident can be acknowledged\n",
    )


def test_an_ack_that_holds_is_kept_unless_replaced(
    config: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second ``watcher ack`` does not silently take over someone's ack: by rule, the incidents
    acknowledged already keep theirs (said on stderr) and the others are taken; by fingerprint it is
    refused with who holds it; ``--replace`` takes it over and says so in its thread."""
    v3, v4 = incident("v3").fingerprint, incident("v4").fingerprint
    assert run(capsys, "ack", "-c", str(config), v3, "-m", "rolling back v3", "--by", "ann")[0] == 0
    code, out, err = run(capsys, "ack", "-c", str(config), "--rule", "api-5xx", "-m", "up", "--by", "bob")
    assert code == 0
    assert out == f"acknowledged {v4} (api-5xx model_version=v4), 1 Slack update(s) queued\n"
    assert err.startswith(f"watcher ack: kept: incident {v3} (api-5xx) is already acknowledged by ann at ")
    assert err.endswith(": 'rolling back v3' (--replace takes it over)\n")
    assert _acks(capsys, config) == {"v3": ("ann", "rolling back v3"), "v4": ("bob", "up")}

    code, out, err = run(capsys, "ack", "-c", str(config), v3, "-m", "mine now", "--by", "cy")
    assert (code, out) == (2, "")
    assert err.startswith(f"watcher ack: incident {v3} (api-5xx) is already acknowledged by ann at ")
    assert _acks(capsys, config)["v3"] == ("ann", "rolling back v3")

    code, out, _ = run(capsys, "ack", "-c", str(config), v3, "-m", "mine now", "--by", "cy", "--replace")
    assert (code, out) == (0, f"acknowledged {v3} (api-5xx model_version=v3), 1 Slack update(s) queued\n")
    assert _acks(capsys, config)["v3"] == ("cy", "mine now")
    sent = _sent_in_order(daemon.state, datetime.now(UTC))
    told = [(i.fingerprint, i.ack["by"]) for n in sent for i in n.incidents if i.acknowledged_now]
    assert told == [(v3, "ann"), (v4, "bob"), (v3, "cy")]


def _acks(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, tuple[str, str]]:
    return {
        row["group"]["model_version"]: (row["ack"]["by"], row["ack"]["message"])
        for row in _incidents(capsys, config)
        if row["ack"] is not None
    }

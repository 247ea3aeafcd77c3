"""``watcher state migrate``: a SQLite state file copied into PostgreSQL, then used there by the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.test_incidents_command import CONFIG, Change
from tests.pg_server import PASSWORD
from watcher.cli import main
from watcher.config import Route
from watcher.incidents.lock import DaemonLock
from watcher.incidents.model import Event, Incident, State
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.routing.dispatch import Dispatcher
from watcher.routing.matchers import Matcher
from watcher.routing.silences import SilenceStore, new_silence
from watcher.state.postgres import PostgresBackend

NOW = datetime.now(UTC).replace(microsecond=0)
SEC = timedelta(seconds=1)


def incident(model: str) -> Incident:
    group = {"model": model}
    started = NOW - 3600 * SEC
    return Incident(
        f"fp-{model}", "api-5xx", group, {"rule": "api-5xx", "model": model}, {}, "critical",
        State.FIRING, 0.25, 0.05, started, fired_at=started,
    )  # fmt: skip


def note(notification_id: str, thread: str) -> Notification:
    return Notification(notification_id, "slack", Event.FIRING, (incident("v3"),), NOW, thread)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A SQLite state with a bit of everything: incidents in a group, a silence, a delivered message
    with its thread reference, a pending one, checkpoints."""
    path = tmp_path / "watcher.yaml"
    path.write_text(CONFIG)
    with StateStore(tmp_path / "data" / "state.sqlite") as state:
        dispatcher = Dispatcher(state, Route.model_validate({"receiver": "slack", "group_by": ["..."]}))
        changes = [Change(incident(model), Event.FIRING, NOW) for model in ("v3", "v4")]
        plan = dispatcher.plan(changes, NOW)
        notes = [note("sent", "t1"), note("waiting", "t2")]
        incidents = [change.incident for change in changes]
        state.commit(incidents, notifications=notes, checkpoints={"api-5xx": NOW}, writes=[plan.write])
        assert state.claim("sent", NOW, NOW + 60 * SEC)
        state.mark_delivered("sent", NOW, {"ts": "1700000000.0001"})
        silence = new_silence([Matcher.parse("team=ml")], NOW, NOW + 3600 * SEC, "ann", "deploy", NOW)
        SilenceStore(state).add(silence)
    return path


def migrate(config: Path, *extra: str) -> int:
    return main(["state", "migrate", "--config", str(config), *extra])


def test_everything_is_copied_and_the_cli_reads_it_there(
    config: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(config, "--to", postgres_url) == 0
    out = capsys.readouterr().out
    copied = "copied 2 incidents, 1 silences, 2 outbox rows, 1 thread references, 2 groups, 1 checkpoints"
    assert copied in out
    assert PASSWORD not in out
    assert "postgres:***@127.0.0.1" in out
    with StateStore(PostgresBackend(postgres_url)) as state:
        assert [i.fingerprint for i in state.incidents()] == ["fp-v3", "fp-v4"]
        assert state.checkpoint("api-5xx") == NOW
        assert [item.notification.id for item in state.due_notifications(NOW)] == ["waiting"]
        assert state.thread_ref("slack", "t1") == {"ts": "1700000000.0001"}
        state.commit(notifications=[note("after", "t3")])  # new rows continue after the copied ones
        assert [item.notification.id for item in state.due_notifications(NOW)] == ["waiting", "after"]
    config.write_text(CONFIG.replace("{path: data/state.sqlite}", f"{{url: {postgres_url!r}}}"))
    assert main(["incidents", "--config", str(config)]) == 0
    assert main(["silence", "ls", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "api-5xx" in shown
    assert "team=ml" in shown


def test_a_target_holding_a_state_is_refused_unless_forced(
    config: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(config, "--to", postgres_url) == 0
    assert migrate(config, "--to", postgres_url) == 2
    err = capsys.readouterr().err
    assert "already holds a watcher state; --force replaces it" in err
    assert PASSWORD not in err
    assert migrate(config, "--to", postgres_url, "--force") == 0
    with StateStore(PostgresBackend(postgres_url)) as state:
        assert len(state.incidents()) == 2


def test_a_running_daemon_is_named_instead_of_copied_under_its_feet(
    config: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with DaemonLock(config.parent / "data" / "state.sqlite"):
        assert migrate(config, "--to", postgres_url) == 2
    assert "another watcher daemon" in capsys.readouterr().err


def test_the_target_must_be_postgresql(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate(config, "--to", "mysql://root:hunter2@db/watcher") == 2
    err = capsys.readouterr().err
    assert "must be a postgresql://" in err
    assert "hunter2" not in err

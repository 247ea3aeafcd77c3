"""What only the PostgreSQL backend does, on a real server: claims that skip a locked row, one daemon
per database, a dropped connection opened again, and a password that never reaches a message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.pg_server import PASSWORD
from watcher.config import StateConfig
from watcher.incidents.model import Event, Incident, State
from watcher.incidents.state import StateStore, StateStoreError
from watcher.notify.base import Notification
from watcher.state.factory import daemon_lock, open_state
from watcher.state.postgres import PostgresBackend
from watcher.state.url import redact, scrub

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


def note(notification_id: str) -> Notification:
    incident = Incident("fp", "r", {}, {}, {}, "critical", State.FIRING, 1.0, 0.5, T0, fired_at=T0)
    return Notification(notification_id, "slack", Event.FIRING, (incident,), T0, f"t-{notification_id}")


def test_a_claim_skips_a_row_another_process_holds_instead_of_waiting(postgres_url: str) -> None:
    with StateStore(PostgresBackend(postgres_url)) as store:
        store.commit(notifications=[note("n1"), note("n2")])
        with psycopg.connect(postgres_url) as other:  # another replica, mid-claim of n1
            other.execute("SELECT 1 FROM outbox WHERE id = 'n1' FOR UPDATE")
            assert store.claim("n1", T0, T0 + 60 * SEC) is None
            assert store.claim("n2", T0, T0 + 60 * SEC) is not None
        assert store.claim("n1", T0, T0 + 60 * SEC) is not None  # released: it is free to take


def test_one_daemon_per_database_and_the_holder_is_named(postgres_url: str) -> None:
    config = StateConfig(url=postgres_url)
    held = r"another watcher daemon \(pid \d+ on .+\) uses this database"
    with daemon_lock(config), pytest.raises(StateStoreError, match=held):
        daemon_lock(config).acquire()
    with daemon_lock(config):
        pass  # released with its connection


def test_a_connection_the_server_dropped_is_opened_again(postgres_url: str) -> None:
    with open_state(StateConfig(url=postgres_url)) as store:
        store.commit(checkpoints={"r": T0})
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid != pg_backend_pid()"
            )
        with pytest.raises(psycopg.OperationalError):
            store.checkpoints()  # the call during the cut fails, as a failed write of the file does
        assert store.checkpoints() == {"r": T0}
        store.commit(checkpoints={"r": T0 + SEC})
        assert store.checkpoint("r") == T0 + SEC


def test_a_refused_password_is_not_in_the_message(postgres_url: str) -> None:
    wrong = postgres_url.replace(PASSWORD, "wrong-pw-123")
    with pytest.raises(StateStoreError) as caught:
        open_state(StateConfig(url=wrong))
    message = str(caught.value)
    assert "wrong-pw-123" not in message
    assert message.startswith("postgresql://postgres:***@127.0.0.1:")
    assert "password authentication failed" in message


def test_the_config_shows_the_state_url_without_its_password() -> None:
    config = StateConfig(url="postgresql://watcher:p%40ss@db:5432/watcher?sslmode=require&password=x")
    assert config.where == "postgresql://watcher:***@db:5432/watcher?sslmode=require&password=***"
    assert "p%40ss" not in repr(config)
    assert "p@ss" not in repr(config)
    assert scrub("failed for p@ss and p%40ss", config.url or "") == "failed for *** and ***"
    assert redact("postgresql://db/watcher") == "postgresql://db/watcher"


def test_a_state_url_must_be_postgresql() -> None:
    with pytest.raises(ValueError, match="must be a postgresql://"):
        StateConfig(url="mysql://watcher@db/watcher")

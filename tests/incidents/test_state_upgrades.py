"""Schema migration from version 1, claims released after a crash, stage writes in a tick's
transaction, and the one-daemon-per-state-file lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.conftest import StateAt
from watcher.config import Config
from watcher.incidents.lock import DaemonLock
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.schema import MIGRATIONS, SCHEMA_VERSION
from watcher.incidents.state import StateStore, StateStoreError
from watcher.notify.base import Notification
from watcher.replay import Replay
from watcher.state.base import Db

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


def incident() -> Incident:
    return Incident(
        fingerprint=fingerprint("r", {}),
        rule="r",
        group={},
        labels={"rule": "r"},
        annotations={},
        severity="warning",
        state=State.FIRING,
        value=1.0,
        threshold=0.5,
        started_at=T0,
    )


def notification(notification_id: str, at: datetime = T0) -> Notification:
    return Notification(notification_id, "slack", Event.FIRING, (incident(),), at, f"t-{notification_id}")


def test_a_version_1_file_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO checkpoints (rule, evaluated_at) VALUES ('r', 1)")
    with StateStore(path) as store:
        store.commit(notifications=[notification("n1")])
        assert store.checkpoints() == {"r": datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=1)}
        assert store.claim("n1", T0, T0 + 60 * SEC)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT count(*) FROM dispatch_groups").fetchone() == (0,)


def test_released_claims_are_due_again_at_once_but_backoffs_are_kept(state_at: StateAt) -> None:
    with state_at.open() as store:
        store.commit(
            notifications=[notification("sending"), notification("backing-off"), notification("done")]
        )
        for notification_id in ("sending", "backing-off", "done"):
            assert store.claim(notification_id, T0, T0 + 120 * SEC)
        store.mark_failed("backing-off", T0, "HTTP 503", T0 + 300 * SEC)
        store.mark_delivered("done", T0)
        assert [i.notification.id for i in store.due_notifications(T0 + SEC)] == []
        if state_at.kind == "postgresql":
            # A shared state: the claim's drainer may be another replica, alive and sending; its
            # claim is released only once its lease ran out.
            assert store.release_claims(T0 + SEC) == 0
            assert store.release_claims(T0 + 120 * SEC) == 1
        else:
            assert store.release_claims(T0 + SEC) == 1  # the daemon died while sending "sending"
        assert [i.notification.id for i in store.due_notifications(T0 + 120 * SEC)] == ["sending"]
        assert store.release_claims(T0 + 120 * SEC) == 0


def test_a_stage_write_that_fails_rolls_back_the_whole_tick(state_at: StateAt) -> None:
    def broken(db: Db) -> None:
        db.execute("INSERT INTO dispatch_groups (key) VALUES ('incomplete')")

    with state_at.open() as store:
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.NotNullViolation)):
            store.commit([incident()], notifications=[notification("n1")], writes=[broken])
        assert (store.incidents(), store.outbox_depth()) == ([], 0)


def test_one_daemon_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with DaemonLock(path):
        with pytest.raises(StateStoreError) as caught:
            DaemonLock(path).acquire()
        assert str(caught.value) == f"{path}: another watcher daemon (pid {os.getpid()}) uses this state file"
    with DaemonLock(path):
        pass  # released on exit


def test_the_lock_of_a_killed_daemon_is_free_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    script = (
        "import time; from pathlib import Path; from watcher.incidents.lock import DaemonLock; "
        f"DaemonLock(Path({str(path)!r})).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateStoreError):
            DaemonLock(path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    deadline = time.monotonic() + 5
    lock = DaemonLock(path)
    while True:
        try:
            lock.acquire()
            break
        except StateStoreError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    lock.release()


def test_delivery_bookkeeping_skips_the_fsync_but_ticks_keep_it(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite") as store:
        store.commit(notifications=[notification("n1")])
        assert store.claim("n1", T0, T0 + SEC)
        store.mark_delivered("n1", T0)
        with store.writing() as db:  # the next durable commit (a tick that enqueues, a silence)
            assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_a_replay_state_is_scratch_never_flushed_even_after_delivery_bookkeeping(tmp_path: Path) -> None:
    """A backtest's state is thrown away when it ends: no fsync per simulated tick."""
    replay = Replay(Config(sources={}), [], [], tmp_path / "replay")
    try:
        replay.state.commit(notifications=[notification("n1")])
        assert replay.state.claim("n1", T0, T0 + SEC)
        replay.state.mark_delivered("n1", T0)
        with replay.state.reading() as db:
            assert db.execute("PRAGMA synchronous").fetchone() == (0,)  # OFF, not back to FULL
        assert replay.state.outbox_item("n1") is not None
    finally:
        replay.close()

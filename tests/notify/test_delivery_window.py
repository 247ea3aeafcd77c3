"""The crash-duplicate window: from a receiver's answer to the committed "delivered" mark.

A SIGKILL inside it re-sends a notification the receiver already has (at least once). On a loaded
host every statement of the mark is a point where the tick's thread takes the GIL and the worker
waits to get it back, so the mark is as few statements as the guarantees allow, on a real SQLite
file: BEGIN, the UPDATE, COMMIT.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.notify.test_outbox import T0, notification
from watcher.incidents.state import StateStore
from watcher.state.sqlite import SQLiteBackend

LEASE = timedelta(minutes=2)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as opened:
        yield opened


def statements(state: StateStore) -> list[str]:
    """Every statement the state's SQLite connection runs from now on."""
    backend = state.backend
    assert isinstance(backend, SQLiteBackend)
    ran: list[str] = []
    backend.db.set_trace_callback(lambda sql: ran.append(sql.split()[0].upper()))
    return ran


def test_the_delivered_mark_is_one_update_in_its_transaction(state: StateStore) -> None:
    state.commit(notifications=[notification("n1"), notification("n2", thread="t2")])
    assert state.claim("n1", T0, T0 + LEASE)
    assert state.claim("n2", T0, T0 + LEASE)
    ran = statements(state)
    state.mark_delivered("n1", T0)
    assert ran == ["BEGIN", "UPDATE", "COMMIT"]  # was 6: the fsync level set and reset, a SELECT
    ran.clear()
    state.mark_delivered("n2", T0, {"channel": "C1", "ts": "1.0"})  # a thread's first message
    assert ran == ["BEGIN", "UPDATE", "INSERT", "COMMIT"]
    assert state.thread_ref("slack", "t2") == {"channel": "C1", "ts": "1.0"}
    assert state.thread_ref("slack", "t1") is None


def test_a_worker_claims_and_marks_without_setting_the_fsync_level_each_time(state: StateStore) -> None:
    """Delivery bookkeeping runs back to back at NORMAL; only a durable commit after it sets FULL."""
    state.commit(notifications=[notification(f"n{i}", thread=f"t{i}") for i in range(3)])
    ran = statements(state)
    for i in range(3):
        assert state.claim(f"n{i}", T0, T0 + LEASE)
        state.mark_delivered(f"n{i}", T0)
    assert ran.count("PRAGMA") == 1  # NORMAL once, not set and reset around each of the six
    ran.clear()
    with state.writing() as db:  # a durable write (a tick that enqueues, a silence)
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert ran.count("PRAGMA") == 2  # FULL set for it, and the check above


def test_marking_an_unknown_or_delivered_notification(state: StateStore) -> None:
    state.commit(notifications=[notification("n1")])
    state.mark_delivered("n1", T0)
    state.mark_delivered("n1", T0)  # idempotent
    with pytest.raises(KeyError, match="no notification 'nope' in the outbox"):
        state.mark_delivered("nope", T0)

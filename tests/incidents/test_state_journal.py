"""The state file's journal is bounded, and a full disk fails a tick cleanly: nothing of it written,
no transaction left open, writes work again once space is freed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.tmpfs import fill, free, tmpfs
from watcher.incidents.model import Incident, State
from watcher.incidents.state import JOURNAL_SIZE_LIMIT, StateStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def incident(n: int) -> Incident:
    return Incident(
        fingerprint=f"fp{n}",
        rule="api-5xx",
        group={"n": str(n)},
        labels={"rule": "api-5xx"},
        annotations={"summary": "x" * 2000},  # a few pages per tick, as a real tick writes
        severity="critical",
        state=State.FIRING,
        value=1.0,
        threshold=0.5,
        started_at=T0,
    )


def tick(state: StateStore, n: int) -> None:
    state.commit([incident(n)], checkpoints={"api-5xx": T0 + timedelta(seconds=n)})


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "2m") as disk:
        yield disk


def wal(path: Path) -> int:
    journal = path.with_name(path.name + "-wal")
    return journal.stat().st_size if journal.exists() else 0


def test_the_journal_size_limit_is_set_and_truncate_wal_gives_the_space_back(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path) as state:
        with state.reading() as db:
            assert db.execute("PRAGMA journal_size_limit").fetchone()[0] == JOURNAL_SIZE_LIMIT
        for n in range(50):
            tick(state, n)
        assert wal(path) > 100_000
        assert state.truncate_wal()
        assert wal(path) == 0
        tick(state, 50)  # and the file goes on working
        assert state.checkpoint("api-5xx") == T0 + timedelta(seconds=50)


def test_the_wal_stays_near_the_limit_between_truncations(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path) as state:
        with state.reading() as db:
            assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * 4096 == JOURNAL_SIZE_LIMIT
        largest = 0
        for n in range(600):  # about 10 MB of frames
            tick(state, n)
            largest = max(largest, wal(path))
        assert largest <= JOURNAL_SIZE_LIMIT + 64 * 1024  # the limit and one tick


def test_truncate_wal_does_not_wait_for_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with StateStore(path, busy_timeout=timedelta(seconds=5)) as state:
        tick(state, 0)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM incidents").fetchone()  # holds a snapshot
        tick(state, 1)
        started = datetime.now(UTC)
        assert not state.truncate_wal()
        assert datetime.now(UTC) - started < timedelta(seconds=1)
        reader.execute("COMMIT")
        reader.close()
        assert state.truncate_wal()


def test_a_full_disk_fails_the_tick_whole_and_writes_resume_once_space_is_freed(small_disk: Path) -> None:
    path = small_disk / "state.sqlite"
    with StateStore(path) as state:
        tick(state, 0)
        state.truncate_wal()  # as the daemon does every 30s: the next frames need new space
        writes = state.writes
        fill(small_disk)
        for n in range(1, 20):
            with pytest.raises(sqlite3.OperationalError, match="full"):
                tick(state, n)
        assert not state.backend.db.in_transaction
        assert state.writes == writes
        assert state.checkpoint("api-5xx") == T0  # the failed ticks advanced nothing
        assert [i.fingerprint for i in state.incidents()] == ["fp0"]
        free(small_disk)
        tick(state, 20)
        assert state.writes == writes + 1
        assert state.checkpoint("api-5xx") == T0 + timedelta(seconds=20)
        assert state.truncate_wal()
        assert wal(path) == 0

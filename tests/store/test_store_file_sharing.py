"""One store file opened several times in one process: the daemon's store attaches its file with
smaller row groups (``LIVE_ROW_GROUP``, which bounds a restart backlog's peak of memory), and two
daemons on one data folder, or a daemon and a one-off store, still share the file."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from watcher.config import EmbeddedSource
from watcher.query import Count, Query, Window
from watcher.query_filters import Eq
from watcher.store import embedded
from watcher.store.embedded import LIVE_ROW_GROUP, EmbeddedStore, from_source

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def lines(count: int, start: int = 0) -> list[str]:
    return [
        json.dumps({"@timestamp": (T0 + timedelta(milliseconds=i)).isoformat(), "service": "api", "n": i})
        for i in range(start, start + count)
    ]


def daemons_store(path: Path) -> EmbeddedStore:
    return from_source(EmbeddedSource(store="embedded", path=path))


def row_groups(path: Path) -> int:
    """How many row groups the closed store file's ``logs`` table has."""
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('logs')").fetchone()
    assert row is not None
    return int(row[0])


def test_two_daemons_and_a_one_off_store_share_one_file_in_one_process(tmp_path: Path) -> None:
    """Attaching the file twice from two DuckDB databases fails ('Unique file handle conflict'):
    every store of one file, however its path is spelled, uses the process's one database of it."""
    path = tmp_path / "data" / "logs.duckdb"
    first = daemons_store(path)
    second = daemons_store(tmp_path / "data" / ".." / "data" / "logs.duckdb")
    one_off = EmbeddedStore(path)
    assert first.ingest_lines(lines(3)).rows_stored == 3
    assert (second.row_count(), one_off.row_count()) == (3, 3)
    first.close()  # the others keep the file open
    assert second.ingest_lines(lines(2, start=3)).rows_stored == 2
    assert one_off.row_count() == 5
    second.close()
    one_off.close()
    reopened = daemons_store(path)  # the file was closed with the last store: it opens again
    assert reopened.time_range() == (T0, T0 + timedelta(milliseconds=4))
    reopened.close()


def test_a_backlog_fills_the_daemons_store_in_smaller_row_groups(tmp_path: Path) -> None:
    """A checkpoint compresses a whole row group at once, and a restart's backlog meets it: the
    daemon's store keeps half DuckDB's default rows per group, a one-off store the default; each
    reads the other's file with every row."""
    backlog = tmp_path / "backlog.jsonl"
    backlog.write_text("\n".join(lines(LIVE_ROW_GROUP + 1000)) + "\n")
    daemons, one_off = tmp_path / "daemon.duckdb", tmp_path / "one-off.duckdb"
    for store in (daemons_store(daemons), EmbeddedStore(one_off)):
        assert store.ingest_files([str(backlog)]).rows_stored == LIVE_ROW_GROUP + 1000
        store.close()
    assert (row_groups(daemons), row_groups(one_off)) == (2, 1)
    for path, store in ((daemons, EmbeddedStore(daemons)), (one_off, daemons_store(one_off))):
        assert store.row_count() == LIVE_ROW_GROUP + 1000, path
        store.close()


def test_a_store_spills_next_to_its_file_not_into_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where DuckDB writes what does not fit its memory limit: next to the file, as a plain
    ``duckdb.connect(path)`` does, not ``./.tmp`` of the daemon's working folder (which may be
    read-only under systemd), though the file is attached to an in-memory database."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "logs.duckdb"
    store = daemons_store(path)
    with store._cursor() as cur:  # the setting has no public reader: ask the store's own DuckDB
        row = cur.execute("SELECT current_setting('temp_directory')").fetchone()
    store.close()
    assert row == (f"{path}.tmp",)


def cached_mb(store: EmbeddedStore) -> float:
    """What DuckDB holds in memory for the store's process (no public reader: its own cursor)."""
    with store._cursor() as cur:
        row = cur.execute("SELECT sum(memory_usage_bytes) / 2 ** 20 FROM duckdb_memory()").fetchone()
    assert row is not None
    return float(row[0])


def test_trimming_drops_the_blocks_duckdb_cached_and_the_store_answers_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB keeps every block it wrote or read until its memory limit (512 MB), so a daemon's
    RSS grew with what its store holds; the daemon trims it after each tick's ingest."""
    path = tmp_path / "logs.duckdb"
    written = EmbeddedStore(path)
    assert written.ingest_lines(lines(60_000)).rows_stored == 60_000
    written.close()  # checkpointed: every block is on disk
    monkeypatch.setattr(embedded, "CACHE_KEPT", "1MB")
    store = daemons_store(path)
    query = Query("q", Window(T0, T0 + timedelta(minutes=2)), {"n": Count()}, Eq("service", "api"))
    (answer,) = store.evaluate([query])  # reads the documents: their blocks are cached
    before = cached_mb(store)
    store.trim_cache()
    assert (before > 2, cached_mb(store) <= 1) == (True, True), before
    assert store.evaluate([query]) == [answer]
    assert answer.groups[0].values["n"] == 60_000
    store.close()


def test_the_daemons_store_trims_its_cache_between_the_chunks_of_a_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart's backlog is read chunk by chunk, and the blocks each chunk wrote stayed cached
    under the next ones: with 10 hours unread the start's peak, the daemon's high-water mark.
    What DuckDB holds before each chunk is measured; a one-off store keeps what it wrote."""
    monkeypatch.setattr(embedded, "CACHE_KEPT", "1MB")
    monkeypatch.setattr(embedded, "LIVE_READ_CHUNK", 256 * 1024)
    held: dict[Path, list[float]] = {}
    store_chunk = EmbeddedStore._store_chunk

    def measured(store: EmbeddedStore, *args: Any) -> None:
        held.setdefault(store.path, []).append(cached_mb(store))
        store_chunk(store, *args)

    monkeypatch.setattr(EmbeddedStore, "_store_chunk", measured)
    backlog = tmp_path / "backlog.jsonl"
    backlog.write_text("\n".join(lines(40_000)) + "\n")  # 3 MB: 13 chunks
    daemons = daemons_store(tmp_path / "daemon.duckdb")
    one_off = EmbeddedStore(tmp_path / "one-off.duckdb", read_chunk=256 * 1024, read_ahead=False)
    for store in (daemons, one_off):
        assert store.ingest_files([str(backlog)]).rows_stored == 40_000
        store.close()
    assert len(held[daemons.path]) == 13
    assert max(held[daemons.path]) <= 1, held
    assert max(held[one_off.path]) > 3, held


def test_the_daemons_store_trims_its_cache_after_filling_field_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first query reading a field fills its column over the query's range, reading every
    document there: those blocks stayed cached under the statement, at the daemon's first tick
    after a restart with a backlog. The daemon's store drops them before the statement runs and
    answers as a one-off store does."""
    path, copy = tmp_path / "logs.duckdb", tmp_path / "copy.duckdb"
    written = EmbeddedStore(path)
    assert written.ingest_lines(lines(60_000)).rows_stored == 60_000
    written.close()  # checkpointed: every block is on disk
    shutil.copy(path, copy)
    monkeypatch.setattr(embedded, "CACHE_KEPT", "1MB")
    query = Query("q", Window(T0, T0 + timedelta(minutes=2)), {"n": Count()}, Eq("service", "api"))
    answers, cached = [], []
    for store in (daemons_store(path), EmbeddedStore(copy)):
        store.trim_cache()
        answers.append(store.evaluate([query]))  # ``service`` gets a column, filled over the window
        cached.append(cached_mb(store))
        store.close()
    assert answers[0] == answers[1]
    assert answers[0][0].groups[0].values["n"] == 60_000
    assert (cached[0] <= 2.5, cached[1] > cached[0] + 1) == (True, True), cached  # MB

"""Tailing JSON-lines files: offsets that survive restarts, partial lines, rotation, retention."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.store.embedded import EmbeddedStore
from watcher.store.ingest import EXPIRED, NOT_JSON

NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def line(n: int, at: datetime = NOON) -> str:
    return json.dumps({"@timestamp": (at + timedelta(seconds=n)).isoformat(), "n": n}) + "\n"


def write(path: Path, *numbers: int, mode: str = "a") -> None:
    with path.open(mode) as handle:
        handle.write("".join(line(n) for n in numbers))


def stored_numbers(store: EmbeddedStore) -> list[int]:
    """The ``n`` of every stored row, sorted (so duplicates show)."""
    with store._cursor() as cur:  # a test-only peek at the rows themselves
        rows = cur.execute("SELECT CAST(json_extract(doc, '$.n') AS INTEGER) FROM logs ORDER BY 1").fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "logs.duckdb"


def test_a_second_pass_reads_only_what_was_appended(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    write(logs / "app.jsonl", 1, 2, 3)
    first = store.ingest_files([str(logs / "*.jsonl")])
    assert (first.files, first.lines_read, first.rows_stored) == (1, 3, 3)
    write(logs / "app.jsonl", 4)
    second = store.ingest_files([str(logs / "*.jsonl")])
    assert (second.lines_read, second.rows_stored) == (1, 1)
    assert store.ingest_files([str(logs / "*.jsonl")]).lines_read == 0
    assert stored_numbers(store) == [1, 2, 3, 4]
    store.close()


def test_offsets_survive_reopening_the_store(logs: Path, db: Path) -> None:
    write(logs / "app.jsonl", 1, 2)
    store = EmbeddedStore(db)
    store.ingest_files([str(logs / "*.jsonl")])
    store.close()
    write(logs / "app.jsonl", 3)
    reopened = EmbeddedStore(db)
    report = reopened.ingest_files([str(logs / "*.jsonl")])
    assert report.rows_stored == 1
    assert stored_numbers(reopened) == [1, 2, 3]
    reopened.close()


def test_a_partial_last_line_waits_for_its_newline(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    path = logs / "app.jsonl"
    whole = line(2)
    path.write_text(line(1) + whole[:10])
    assert store.ingest_files([str(path)]).rows_stored == 1
    assert store.ingest_files([str(path)]).lines_read == 0
    with path.open("a") as handle:
        handle.write(whole[10:-1])  # complete JSON, still no newline
    assert store.ingest_files([str(path)]).lines_read == 0
    with path.open("a") as handle:
        handle.write("\n")
    report = store.ingest_files([str(path)])
    assert (report.lines_read, report.rows_stored, report.skipped_total) == (1, 1, 0)
    assert stored_numbers(store) == [1, 2]
    store.close()


def test_rotation_by_rename_and_create_reads_the_new_file_from_the_start(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    path = logs / "app.jsonl"
    write(path, 1, 2, 3)
    store.ingest_files([str(logs / "*.jsonl")])
    path.rename(logs / "app.jsonl.1")  # no longer matched by the glob
    write(path, 4, 5)
    assert store.ingest_files([str(logs / "*.jsonl")]).rows_stored == 2
    assert stored_numbers(store) == [1, 2, 3, 4, 5]
    store.close()


def test_a_rotated_file_still_matched_continues_where_it_was(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    path = logs / "app.jsonl"
    write(path, 1, 2)
    store.ingest_files([str(logs / "*.jsonl")])
    write(path, 3)  # written just before rotation, not read yet
    path.rename(logs / "app-2024-06-01.jsonl")
    write(path, 4)
    report = store.ingest_files([str(logs / "*.jsonl")])
    assert (report.files, report.rows_stored) == (2, 2)
    assert stored_numbers(store) == [1, 2, 3, 4]
    assert store.ingest_files([str(logs / "*.jsonl")]).rows_stored == 0
    store.close()


def test_truncation_below_the_offset_reads_from_the_start(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    path = logs / "app.jsonl"
    write(path, 1, 2, 3)
    store.ingest_files([str(path)])
    write(path, 4, mode="w")  # copytruncate: same inode, smaller than the offset
    assert store.ingest_files([str(path)]).rows_stored == 1
    assert stored_numbers(store) == [1, 2, 3, 4]
    store.close()


def test_a_replaced_file_that_grew_past_the_offset_is_read_from_the_start(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    path = logs / "app.jsonl"
    write(path, 1)
    store.ingest_files([str(path)])
    write(path, 20, 21, 22, mode="w")  # same inode, larger than before, different content
    assert store.ingest_files([str(path)]).rows_stored == 3
    assert stored_numbers(store) == [1, 20, 21, 22]
    store.close()


def test_small_read_chunks_and_a_line_longer_than_a_chunk(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db, read_chunk=16)
    path = logs / "app.jsonl"
    long = json.dumps({"@timestamp": NOON.isoformat(), "n": 99, "pad": "x" * 100}) + "\n"
    path.write_text(line(1) + long + line(2) + "oops\n")
    report = store.ingest_files([str(path)])
    assert (report.lines_read, report.rows_stored, dict(report.skipped)) == (4, 3, {NOT_JSON: 1})
    assert stored_numbers(store) == [1, 2, 99]
    store.close()


def test_several_globs_and_globs_matching_nothing(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    (logs / "a").mkdir()
    write(logs / "a" / "one.jsonl", 1)
    write(logs / "two.log", 2)
    report = store.ingest_files([str(logs / "**" / "*.jsonl"), str(logs / "*.log"), str(logs / "none*")])
    assert (report.files, report.rows_stored) == (2, 2)
    assert store.ingest_files([]).files == 0
    store.close()


def test_cursors_of_deleted_files_are_forgotten(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db)
    write(logs / "old.jsonl", 1)
    store.ingest_files([str(logs / "*.jsonl")])
    os.remove(logs / "old.jsonl")
    store.ingest_files([str(logs / "*.jsonl")])
    with store._cursor() as cur:
        assert cur.execute("SELECT count(*) FROM ingest_cursors").fetchall() == [(0,)]
    store.close()


def test_retention_skips_old_lines_and_deletes_old_rows(logs: Path, db: Path) -> None:
    store = EmbeddedStore(db, retention=timedelta(hours=1))
    path = logs / "app.jsonl"
    path.write_text(
        line(0, NOON - timedelta(hours=2)) + line(1, NOON - timedelta(minutes=30)) + line(2, NOON)
    )
    report = store.ingest_files([str(path)], now=NOON)
    assert (report.rows_stored, dict(report.skipped)) == (2, {EXPIRED: 1})
    assert store.apply_retention(NOON + timedelta(minutes=45)) == 1
    assert stored_numbers(store) == [2]
    # a pass with a later clock expires what has aged in the meantime
    write(path, 3)
    store.ingest_files([str(path)], now=NOON + timedelta(hours=1, seconds=3))
    assert stored_numbers(store) == [3]
    store.close()


def test_without_retention_nothing_expires(db: Path) -> None:
    store = EmbeddedStore(db)
    store.ingest_lines([line(0, NOON - timedelta(days=400))], now=NOON)
    assert store.apply_retention(NOON) == 0
    assert store.row_count() == 1
    store.close()

"""The embedded store on a full disk: an ingest that cannot commit raises and keeps its file offsets,
so once space is freed every line is stored exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.tmpfs import fill, free, tmpfs
from watcher.store.embedded import EmbeddedStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def append(log: Path, start: int, count: int) -> None:
    with log.open("a") as out:
        for n in range(start, start + count):
            ts = (T0 + timedelta(milliseconds=n)).isoformat()
            out.write(json.dumps({"ts": ts, "n": n, "pad": "x" * 200}) + "\n")


def test_lines_appended_while_the_disk_is_full_are_stored_once_space_is_freed(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.jsonl"
    log.parent.mkdir()
    with tmpfs(tmp_path / "disk", "4m") as disk:
        store = EmbeddedStore(disk / "logs.duckdb", time_field="ts")
        try:
            append(log, 0, 100)
            assert store.ingest_files([str(log)]).rows_stored == 100
            fill(disk)
            append(log, 100, 3000)
            for _ in range(3):
                with pytest.raises(Exception):  # noqa: B017,PT011 -- DuckDB's error classes vary
                    store.ingest_files([str(log)])
            free(disk)
            append(log, 3100, 50)
            assert store.ingest_files([str(log)]).rows_stored == 3050
            with store._cursor() as cur:
                stored = cur.execute("SELECT count(*), count(DISTINCT doc) FROM logs").fetchone()
            assert stored == (3150, 3150)
        finally:
            store.close()

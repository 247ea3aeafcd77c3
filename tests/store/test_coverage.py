"""Data coverage: a window that reaches before the first stored log line is not enough data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.query import Count, Query, Window
from watcher.store.coverage import Coverage
from watcher.store.embedded import EmbeddedStore

FIRST = datetime(2026, 1, 5, 8, 0, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)


def query(start: datetime, end: datetime) -> Query:
    return Query("q", Window(start, end), {"n": Count()})


def test_windows_before_the_first_line_are_not_covered_and_the_first_interval_is(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts")
    store.ingest_lines([f'{{"ts": "{FIRST.isoformat()}"}}', f'{{"ts": "{(FIRST + 5 * MIN).isoformat()}"}}'])
    coverage = Coverage({"app": store})
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    # The interval holding the first line (08:00-08:01 for a 1m rule) counts as covered ...
    assert coverage.uncovered("app", [query(start, start + MIN)], MIN) is None
    # ... an evaluation reaching before it, through any of its windows (a reference), is not.
    reference = query(start - timedelta(days=1), start - timedelta(days=1) + MIN)
    assert coverage.uncovered("app", [query(start + MIN, start + 2 * MIN), reference], MIN) == (
        "not enough data: the window from 2026-01-04 08:00:00 UTC reaches before the first log line "
        "the store holds (2026-01-05 08:00:00 UTC)"
    )
    store.close()


def test_an_empty_store_covers_nothing_and_a_store_that_cannot_tell_covers_everything(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts")
    coverage = Coverage({"app": store, "es": object()})  # type: ignore[dict-item]
    window = [query(FIRST, FIRST + MIN)]
    assert coverage.uncovered("app", window, MIN) == "not enough data: the store holds no log lines yet"
    assert coverage.uncovered("es", window, MIN) is None
    store.close()


def test_the_first_time_follows_ingestion_and_retention(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="ts", retention=timedelta(hours=1))
    assert store.first_time() is None
    store.ingest_lines([f'{{"ts": "{FIRST.isoformat()}"}}'])
    assert store.first_time() == FIRST
    store.ingest_lines([f'{{"ts": "{(FIRST - MIN).isoformat()}"}}'])
    assert store.first_time() == FIRST - MIN
    store.ingest_lines([f'{{"ts": "{(FIRST + 2 * timedelta(hours=1)).isoformat()}"}}'])
    store.apply_retention(FIRST + 2 * timedelta(hours=1))
    assert store.first_time() == FIRST + 2 * timedelta(hours=1)
    store.close()

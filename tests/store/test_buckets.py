"""Which buckets of a series are held (``watcher.store.buckets.Runs``): a window's missing buckets
are found from the runs held, on the window's own grid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watcher.store.buckets import Runs

MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + minutes * MINUTE


def test_a_window_moved_on_by_a_minute_misses_its_newest_bucket_only() -> None:
    held = Runs(MINUTE)
    held.add(at(0), at(5))
    assert held.gaps(at(0), at(5)) == []
    assert held.gaps(at(1), at(6)) == [(at(5), at(6))]
    held.add(at(5), at(6))
    assert held.runs[timedelta(0)] == [(at(0), at(6))]  # touching runs are one


def test_holes_between_runs_and_other_grids_are_missing() -> None:
    held = Runs.of([at(m) for m in (0, 1, 4, 5, 9)], MINUTE)
    assert held.gaps(at(0), at(10)) == [(at(2), at(4)), (at(6), at(9))]
    assert held.gaps(at(-2), at(1)) == [(at(-2), at(0))]
    assert held.gaps(at(0.5), at(2.5)) == [(at(0.5), at(2.5))]  # the half-minute grid holds nothing

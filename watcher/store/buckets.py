"""Time buckets and spans: a query's bucket length, bucket starts, their runs, and spans merged into
disjoint ones (the per-bucket partials, ``watcher.store.partials``, and the embedded store's scans)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from watcher.query import Query

MS = timedelta(milliseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BUCKETS = 1440
"""Buckets per window: a longer window (a day evaluated every minute) is asked directly."""


def bucket_size(query: Query) -> timedelta | None:
    """The bucket length of a query that comes back ``every``: gcd(window, every) in whole ms,
    when its window starts on a whole millisecond and holds at most ``MAX_BUCKETS`` buckets."""
    length = query.window.end - query.window.start
    if query.every is None or query.buckets is not None or length <= timedelta(0):
        return None
    if length % MS or query.every % MS or query.window.start.microsecond % 1000:
        return None
    size = math.gcd(length // MS, query.every // MS) * MS
    return size if length // size <= MAX_BUCKETS else None


def runs(starts: Sequence[datetime], size: timedelta) -> Iterable[tuple[datetime, datetime]]:
    """Consecutive bucket starts as ``[first, end)`` ranges."""
    run: list[datetime] = []
    for start in starts:
        if run and start != run[-1] + size:
            yield run[0], run[-1] + size
            run = []
        run.append(start)
    if run:
        yield run[0], run[-1] + size


def bucket_starts(first: datetime, end: datetime, size: timedelta) -> list[datetime]:
    return [first + k * size for k in range((end - first) // size)]


def merge_spans(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The same times as ``spans``, as sorted disjoint spans (touching spans are joined)."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def within(start: datetime, end: datetime, spans: Sequence[tuple[datetime, datetime]]) -> bool:
    return any(lo <= start and end <= hi for lo, hi in spans)


def from_ms(millis: int) -> datetime:
    return EPOCH + millis * MS


class Runs:
    """Which buckets of one length are held, as runs ``[first, end)`` per grid (a bucket start's
    offset from the epoch, modulo the length): a window's buckets not held are found from a run
    or two -- at a steady tick the newest bucket -- not by looking up each of its buckets (1,000
    rules with 30-minute windows every 5 s looked up 360 each per tick)."""

    __slots__ = ("runs", "size")

    def __init__(self, size: timedelta) -> None:
        self.size = size
        self.runs: dict[timedelta, list[tuple[datetime, datetime]]] = {}

    @classmethod
    def of(cls, starts: Iterable[datetime], size: timedelta) -> Runs:
        """The runs of the buckets starting at ``starts``."""
        held = cls(size)
        by_grid: dict[timedelta, list[datetime]] = {}
        for start in sorted(starts):
            by_grid.setdefault((start - EPOCH) % size, []).append(start)
        held.runs = {grid: list(runs(grid_starts, size)) for grid, grid_starts in by_grid.items()}
        return held

    def add(self, first: datetime, end: datetime) -> None:
        grid = (first - EPOCH) % self.size
        self.runs[grid] = merge_spans([*self.runs.get(grid, ()), (first, end)])

    def gaps(self, first: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The parts of ``[first, end)`` whose buckets (on ``first``'s grid) are not held, in order."""
        found, at = [], first
        for lo, hi in self.runs.get((first - EPOCH) % self.size, ()):  # sorted, disjoint
            if lo >= end:
                break
            if hi > at:
                if lo > at:
                    found.append((at, lo))
                at = hi
        if at < end:
            found.append((at, end))
        return found

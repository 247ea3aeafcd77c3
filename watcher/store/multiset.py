"""Multisets of numbers: a bucket's (``Sorted``) and a window's sum of them (``Tally``), the
partials of a numeric ``Values`` (percentiles over a sliding window, ``watcher.store.partial_values``).

Plain lists and ``bisect``, not NumPy: loading NumPy cost a daemon with percentile rules about
11 MB of RSS (its libraries and modules), more than all its partials hold. A bucket is kept as
lists (its distinct values ascending, their counts) and an ``array`` of running counts, never changed. A
window's sum is the list of its buckets, not their values merged: a percentile is a selection
among the buckets' sorted lists (``_select``), a few bisections of each per step. Merging every
bucket into a dict of counts as the window slid, and sorting it when a percentile was asked, was
most of a steady tick's Python (a p99 over an hour of ~19k distinct latencies: ~8 ms per window
per tick, against ~0.7 ms selecting among its 60 buckets).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate


class Sorted:
    """A bucket's multiset of numbers: distinct values ascending with their counts and running
    counts (lists of the same length). Never changed: a window's ``Tally`` holds it while it is in
    the window."""

    __slots__ = ("counts", "running", "total", "values")

    def __init__(self, values: list[float], counts: list[int]) -> None:
        self.values, self.counts = values, counts
        self.running = array("q", accumulate(counts))  # 8 bytes each: large ints are objects of 28
        self.total = self.running[-1] if counts else 0

    @classmethod
    def of(cls, counted: Mapping[float, int]) -> Sorted:
        if all(type(value) is float for value in counted):  # the stores' answers: distinct numbers
            values = sorted(counted)
            return cls(values, [int(counted[value]) for value in values])
        merged: dict[float, int] = {}
        for value, count in counted.items():
            number = float(value)
            merged[number] = merged.get(number, 0) + int(count)
        values = sorted(merged)
        return cls(values, [merged[value] for value in values])

    def quantile(self, fraction: float) -> float | None:
        return Tally(self).quantile(fraction)


class Tally:
    """A window's multiset of numbers: the buckets' ``Sorted`` it holds (the oldest first), added
    as the window gains them and taken off as it leaves them."""

    __slots__ = ("parts", "total")

    def __init__(self, first: Sorted) -> None:
        self.parts = [first] if first.total else []
        self.total = first.total

    def add(self, bucket: Sorted) -> None:
        if bucket.total:
            self.parts.append(bucket)
            self.total += bucket.total

    def take_off(self, bucket: Sorted) -> None:
        """Take off a bucket added before (that one, or one equal to it)."""
        if not bucket.total:
            return
        parts = self.parts
        found = next((i for i, part in enumerate(parts) if part is bucket), None)
        if found is None:
            found = next(i for i, part in enumerate(parts) if _equal(part, bucket))
        del parts[found]
        self.total -= bucket.total

    def counted(self) -> dict[float, int]:
        """Each value with its count, ascending."""
        counts: dict[float, int] = {}
        for part in self.parts:
            for value, count in zip(part.values, part.counts, strict=True):
                counts[value] = counts.get(value, 0) + count
        return {value: counts[value] for value in sorted(counts)}

    def quantile(self, fraction: float) -> float | None:
        """As DuckDB's ``quantile_cont``: linear interpolation between the two nearest ranks."""
        if not self.total:
            return None
        rank = (self.total - 1) * fraction
        low, high = math.floor(rank), math.ceil(rank)
        below, atmost, ends = _select(self.parts, low)
        if low == high or high < atmost:
            return below
        above = min(
            part.values[end] for part, end in zip(self.parts, ends, strict=True) if end < len(part.values)
        )
        return below + (above - below) * (rank - low)


def _equal(one: Sorted, other: Sorted) -> bool:
    return one.values == other.values and one.counts == other.counts


def _select(parts: Sequence[Sorted], rank: int) -> tuple[float, int, list[int]]:
    """The value at ``rank`` (0-based, ascending) among the values of ``parts``, how many are at most
    it, and where each part's values above it start.

    Each step takes a pivot from the part with the most candidate values left (alternately where
    the rank falls if the candidates are spread alike, and their middle, so that it narrows down
    however skewed the parts are), counts the values below and at most the pivot with two
    bisections of each part, and keeps the side of the pivot the rank is on. Parts of one window
    are spread alike: an hour of 60 buckets takes about six steps."""
    size = len(parts)
    lows, highs = [0] * size, [len(part.values) for part in parts]
    below, upto = 0, sum(part.total for part in parts)
    step = 0
    while True:
        step += 1
        best, width = 0, 0
        for i in range(size):
            if highs[i] - lows[i] > width:
                best, width = i, highs[i] - lows[i]
        guess = width * (rank - below) // (upto - below) if step % 2 else width // 2
        pivot = parts[best].values[lows[best] + guess]
        less = most = 0
        lefts, rights = [0] * size, [0] * size
        for i, part in enumerate(parts):
            values, running = part.values, part.running
            left = lefts[i] = bisect_left(values, pivot, lows[i], highs[i])
            right = rights[i] = bisect_right(values, pivot, left, highs[i])
            if left:
                less += running[left - 1]
            if right:
                most += running[right - 1]
        if rank < less:
            highs, upto = lefts, less
        elif rank < most:
            return pivot, most, rights
        else:
            lows, below = rights, most

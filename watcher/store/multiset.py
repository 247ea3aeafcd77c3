"""A multiset of numbers kept sorted: the per-bucket partial of a numeric ``Values`` (percentiles
over a sliding window, ``watcher.store.partial_values``).

Plain lists and ``bisect``, not NumPy: loading NumPy cost a daemon with percentile rules about
11 MB of RSS (its libraries and modules), more than all its partials hold. A sliding window adds
and takes off one small bucket at a time, which is a few binary searches and list inserts (C
memmoves) into a copy (a large bucket is merged by one sort of the two runs); a high percentile
walks down from the largest values, another searches the running counts. Measured against the
NumPy form on 360-bucket windows: faster up to a few dozen distinct values a bucket, about 2x
slower at 25 and 4x at 300 (1 ms a step at 11,000 distinct values), the same answers.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from itertools import accumulate

_MERGE_AT = 8
"""``plus`` re-sorts instead of inserting one by one when the other multiset has more than
1/_MERGE_AT of this one's values (timsort merges the two sorted runs in one pass)."""
_WALK = 64
"""A rank at most this far below the top is found by walking down from the largest value."""


class Sorted:
    """A multiset of numbers: distinct values ascending with their counts (two lists of the same
    length). Adding and taking off a bucket's values is a merge, a percentile a walk of the
    counts to its rank -- not a sort of the window's values at every evaluation. Never changed
    in place: a window's sum may share a bucket's multiset."""

    __slots__ = ("counts", "running", "total", "values")

    def __init__(self, values: list[float], counts: list[int]) -> None:
        self.values, self.counts = values, counts
        self.total = sum(counts)
        self.running: list[int] | None = None
        """The running counts, summed when a percentile needs them."""

    @classmethod
    def of(cls, counted: Mapping[float, int]) -> Sorted:
        merged: dict[float, int] = {}
        for value, count in counted.items():
            number = float(value)
            merged[number] = merged.get(number, 0) + int(count)
        values = sorted(merged)
        return cls(values, [merged[value] for value in values])

    def plus(self, other: Sorted) -> Sorted:
        if not other.values:
            return self
        if _MERGE_AT * len(other.values) > len(self.values):
            merged = dict(zip(self.values, self.counts, strict=True))
            for value, count in zip(other.values, other.counts, strict=True):
                merged[value] = merged.get(value, 0) + count
            values = sorted(merged)  # two sorted runs: one merge pass
            return Sorted(values, [merged[value] for value in values])
        values, counts = self.values.copy(), self.counts.copy()
        for value, count in zip(other.values, other.counts, strict=True):
            at = bisect_left(values, value)
            if at < len(values) and values[at] == value:
                counts[at] += count
            else:
                values.insert(at, value)
                counts.insert(at, count)
        return Sorted(values, counts)

    def minus(self, other: Sorted) -> Sorted:
        """Take off values added before (each of ``other``'s values is in this multiset)."""
        if not other.values:
            return self
        values, counts = self.values.copy(), self.counts.copy()
        for value, count in zip(reversed(other.values), reversed(other.counts), strict=True):
            at = bisect_left(values, value)  # from the top: deleting keeps lower positions
            counts[at] -= count
            if counts[at] <= 0:
                del values[at], counts[at]
        return Sorted(values, counts)

    def quantile(self, fraction: float) -> float | None:
        """As DuckDB's ``quantile_cont``: linear interpolation between the two nearest ranks."""
        if not self.total:
            return None
        rank = (self.total - 1) * fraction
        low, high = math.floor(rank), math.ceil(rank)
        below, above = self._at(low), self._at(high)
        return below if low == high else below + (above - below) * (rank - low)

    def _at(self, rank: int) -> float:
        """The value at ``rank`` (0-based, ascending): near the top (a p99) by walking down from
        the largest value, else by a search of the running counts (summed in C, once)."""
        counts, seen = self.counts, self.total
        if self.total - rank <= _WALK:
            for i in range(len(counts) - 1, -1, -1):
                seen -= counts[i]
                if seen <= rank:
                    return self.values[i]
        if self.running is None:
            self.running = list(accumulate(counts))
        return self.values[bisect_right(self.running, rank)]

"""Multisets of numbers: a bucket's (``Sorted``) and a window's running sum of them (``Tally``), the
partials of a numeric ``Values`` (percentiles over a sliding window, ``watcher.store.partial_values``).

Plain lists, dicts and ``bisect``, not NumPy: loading NumPy cost a daemon with percentile rules
about 11 MB of RSS (its libraries and modules), more than all its partials hold. A bucket is kept
as two lists (compact, never changed); a window's sum is a dict of counts changed in place as the
window slides (the newest bucket's counts added, the oldest's taken off) and sorted when a
percentile is asked. Before, each step copied the window's lists twice (``Sorted.plus`` and
``minus`` returned new multisets): about 0.1 ms a tick for a p99 over 5 minutes of ~450 distinct
values. A high percentile walks down from the largest values, another searches the running counts.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate

_WALK = 64
"""A rank at most this far below the top is found by walking down from the largest value."""


class Sorted:
    """A bucket's multiset of numbers: distinct values ascending with their counts (two lists of
    the same length). Never changed: a window's ``Tally`` adds it and later takes it off."""

    __slots__ = ("counts", "total", "values")

    def __init__(self, values: list[float], counts: list[int]) -> None:
        self.values, self.counts = values, counts
        self.total = sum(counts)

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
    """A window's multiset of numbers, the sum of its buckets' ``Sorted``: counts by value, changed
    in place as buckets come and go; the values sorted (one C sort of a few hundred floats) when a
    percentile asks, not at every step."""

    __slots__ = ("counts", "running", "total", "values")

    def __init__(self, first: Sorted) -> None:
        self.counts = dict(zip(first.values, first.counts, strict=True))
        self.total = first.total
        self.values: list[float] | None = None
        self.running: list[int] | None = None
        """The distinct values ascending and their running counts, when a percentile asked,
        until the next change."""

    def add(self, bucket: Sorted) -> None:
        counts = self.counts
        for value, count in zip(bucket.values, bucket.counts, strict=True):
            counts[value] = counts.get(value, 0) + count
        self.total += bucket.total
        self.values = self.running = None

    def take_off(self, bucket: Sorted) -> None:
        """Take off a bucket added before (each of its values is in this multiset)."""
        counts = self.counts
        for value, count in zip(bucket.values, bucket.counts, strict=True):
            left = counts[value] - count
            if left > 0:
                counts[value] = left
            else:
                del counts[value]
        self.total -= bucket.total
        self.values = self.running = None

    def counted(self) -> dict[float, int]:
        """Each value with its count, ascending."""
        return {value: self.counts[value] for value in sorted(self.counts)}

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
        the largest value, else by a search of the running counts (summed in C). Each step of the
        walk passes at least one value; a step costs about four values summed, so the walk is
        taken while the rank is within a quarter of the distinct values from the top: a p99 over
        a window of mostly distinct latencies walks ~1 % of them instead of summing them all."""
        counts, seen = self.counts, self.total
        if self.values is None:
            self.values = sorted(counts)
        if self.total - rank <= _WALK or (self.total - rank) * 4 <= len(self.values):
            for value in reversed(self.values):
                seen -= counts[value]
                if seen <= rank:
                    return value
        if self.running is None:
            self.running = list(accumulate(map(counts.__getitem__, self.values)))
        return self.values[bisect_right(self.running, rank)]

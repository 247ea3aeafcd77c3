"""A multiset of numbers kept sorted in NumPy arrays: the per-bucket partial of a numeric
``Values`` (percentiles over a sliding window, ``watcher.store.partial_values``). Its own module
so that NumPy is loaded only by a daemon whose rules need it."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt


class Sorted:
    """A multiset of numbers: distinct values ascending with their counts (NumPy arrays). Adding
    and taking off a bucket's values is a merge, a percentile a cumulative sum and a search --
    not a sort of the window's values at every evaluation. Never changed in place."""

    __slots__ = ("counts", "values")

    def __init__(self, values: npt.NDArray[np.float64], counts: npt.NDArray[np.int64]) -> None:
        self.values, self.counts = values, counts

    @classmethod
    def of(cls, counted: Mapping[float, int]) -> Sorted:
        values = np.fromiter(counted.keys(), np.float64, len(counted))
        counts = np.fromiter(counted.values(), np.int64, len(counted))
        order = np.argsort(values, kind="stable")
        return cls(values[order], counts[order])

    def plus(self, other: Sorted) -> Sorted:
        at = np.searchsorted(self.values, other.values)
        known = at < len(self.values)
        known[known] = self.values[at[known]] == other.values[known]
        counts = self.counts.copy()
        counts[at[known]] += other.counts[known]  # distinct values: no index twice
        new = ~known
        if not new.any():
            return Sorted(self.values, counts)
        return Sorted(
            np.insert(self.values, at[new], other.values[new]), np.insert(counts, at[new], other.counts[new])
        )

    def minus(self, other: Sorted) -> Sorted:
        """Take off values added before (each of ``other``'s values is in this multiset)."""
        counts = self.counts.copy()
        counts[np.searchsorted(self.values, other.values)] -= other.counts
        kept = counts > 0
        return Sorted(self.values[kept], counts[kept])

    def quantile(self, fraction: float) -> float | None:
        """As DuckDB's ``quantile_cont``: linear interpolation between the two nearest ranks."""
        cumulative = np.cumsum(self.counts)
        total = int(cumulative[-1]) if len(cumulative) else 0
        if not total:
            return None
        rank = (total - 1) * fraction
        low, high = math.floor(rank), math.ceil(rank)
        below = float(self.values[np.searchsorted(cumulative, low, side="right")])
        above = float(self.values[np.searchsorted(cumulative, high, side="right")])
        return below if low == high else below + (above - below) * (rank - low)

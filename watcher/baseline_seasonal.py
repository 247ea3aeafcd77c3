"""Building a seasonal profile: the whole-range profile's bins counted per slot (see
``watcher.baseline_slots``), from a DataFrame with a time column here or from a store's hourly
buckets (``watcher.baseline_store``). Both sum counts into a ``SlotTally`` per slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from watcher.baseline import OTHER, CategoricalFeature, NumericFeature, Profile, bucket_counts, shares_of
from watcher.baseline_slots import HOUR, Slot, SlotBy, SlotFeature, range_hours, slot_names, slot_of

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class SlotTally:
    """Counts of one slot so far: rows, and per feature rows with a value and counts per bin."""

    rows: int = 0
    present: dict[str, int] = field(default_factory=dict)
    bins: dict[str, list[float]] = field(default_factory=dict)

    def add(self, rows: int, present: Mapping[str, int], bins: Mapping[str, Sequence[float]]) -> None:
        self.rows += rows
        for name, count in present.items():
            self.present[name] = self.present.get(name, 0) + count
        for name, counts in bins.items():
            old = self.bins.get(name) or [0.0] * len(counts)
            self.bins[name] = [a + b for a, b in zip(old, counts, strict=True)]


def seasonal(
    profile: Profile, by: SlotBy, tallies: Mapping[str, SlotTally], hours: Mapping[str, float]
) -> Profile:
    """``profile`` with one slot per name of ``by`` (empty slots included: the checks refuse them)."""
    slots = {
        name: _slot(profile, tallies.get(name, SlotTally()), hours.get(name, 0.0)) for name in slot_names(by)
    }
    return profile.model_copy(update={"version": 2, "by": by, "slots": slots})


def _slot(profile: Profile, tally: SlotTally, hours: float) -> Slot:
    features = {}
    for name, whole in profile.features.items():
        present = tally.present.get(name, 0)
        counts = tally.bins.get(name) or [0.0] * len(_bins(whole))
        features[name] = SlotFeature(
            count=present,
            missing_rate=1 - present / tally.rows if tally.rows else 0.0,
            shares=shares_of(counts, sum(counts)),
        )
    return Slot(rows=tally.rows, hours=hours, features=features)


def _bins(feature: NumericFeature | CategoricalFeature) -> list[str]:
    if isinstance(feature, CategoricalFeature):
        return [*feature.categories, OTHER]
    return [""] * (len(feature.edges) + 1 if feature.edges else 1)


def category_counts(counts: Mapping[str, float], present: int, feature: CategoricalFeature) -> list[float]:
    """Counts in a categorical feature's bins: its top values, then everything else."""
    named = [float(counts.get(category, 0)) for category in feature.categories]
    return [*named, float(max(present - sum(named), 0))]


# --------------------------------------------------------------------------- from pandas


def seasonal_from_frame(
    profile: Profile, frame: pd.DataFrame, *, time_field: str, by: SlotBy, prefix: str = ""
) -> Profile:
    """``profile`` (built from ``frame``) with slots of ``by`` by the UTC time in ``time_field``;
    rows without a readable time are left out of every slot."""
    import pandas as pd

    times = pd.to_datetime(frame[time_field], utc=True, errors="coerce")
    timed = frame[times.notna()]
    times = times[times.notna()]
    if not len(times):
        raise ValueError(f"no row has a time in {time_field!r}: cannot cut the rows into slots")
    names = [slot_of(time, by) for time in times]
    tallies: dict[str, SlotTally] = {}
    for name, rows in timed.groupby(names):
        tallies[str(name)] = _tally(profile, rows, prefix)
    first = times.min().to_pydatetime().replace(minute=0, second=0, microsecond=0)
    last = times.max().to_pydatetime().replace(minute=0, second=0, microsecond=0) + HOUR
    return seasonal(profile, by, tallies, range_hours(first, last, by))


def _tally(profile: Profile, rows: pd.DataFrame, prefix: str) -> SlotTally:
    import numpy as np
    import pandas as pd

    present: dict[str, int] = {}
    bins: dict[str, list[float]] = {}
    for name, feature in profile.features.items():
        column = rows[name.removeprefix(prefix)]
        if isinstance(feature, NumericFeature):
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
            values = values[~np.isnan(values)]
            present[name] = len(values)
            bins[name] = (
                [float(c) for c in bucket_counts(values, feature.edges)] if feature.edges else [len(values)]
            )
        else:
            values = column.dropna().astype(str)
            present[name] = len(values)
            counts = {str(k): int(v) for k, v in values.value_counts().items()}
            bins[name] = category_counts(counts, len(values), feature)
    tally = SlotTally()
    tally.add(len(rows), present, bins)
    return tally


def bucket_start(epoch_ms: str) -> datetime:
    """A bucket key (epoch milliseconds) as a UTC time."""
    return datetime.fromtimestamp(int(float(epoch_ms)) / 1000, tz=UTC)

"""Features that are the clock: their value is a function of the row's time. Against a whole-range
profile such a feature drifts at every hour (issue 13 saw an hour-of-day feature score PSI 8.5 on
a normal day); ``watcher baseline build`` warns and suggests leaving it out or a seasonal profile.

- numeric: the value (rounded down) equals the hour, the minute or the weekday (Monday 0) of the
  time field for at least 99 % of the rows with a value, and that clock reading took two values
  or more;
- categorical: each hour of the day holds one value for at least 99 % of its rows, two or more
  hours hold different values, and the rows span two days or more (one day of a value that
  changed once is not the clock).

A source is checked on the first two days of the range, with one bucketed query (per minute:
a histogram on whole numbers 0..60, or the top values).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.baseline import Profile
from watcher.baseline_seasonal import bucket_start
from watcher.query import BUCKET, Aggregate, Histogram, Query, Terms, Window
from watcher.query_filters import MATCH_ALL, Filter

if TYPE_CHECKING:
    import pandas as pd

    from watcher.store.base import LogStore

SHARE = 0.99
SAMPLE = timedelta(days=2)
MINUTE = timedelta(minutes=1)
WHOLE = tuple(float(k) for k in range(62))  # bins [k, k + 1) for k in 0..60
CLOCK: dict[str, Callable[[datetime], int]] = {
    "hour": lambda t: t.hour,
    "minute": lambda t: t.minute,
    "weekday": lambda t: t.weekday(),
}
SEASONAL = {"hour": "--by hour", "weekday": "--by weekday_hour"}
COVERED = {"hour": ("hour", "weekday_hour"), "weekday": ("weekday_hour",), "minute": ()}


@dataclass
class ClockTally:
    """What the rows say about one feature and the clock."""

    present: int = 0
    matches: Counter[str] = field(default_factory=Counter)
    readings: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    by_hour: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    days: set[object] = field(default_factory=set)

    def numeric(self, time: datetime, whole: Mapping[int, int], present: int) -> None:
        """Rows of one time (a minute) with ``whole[k]`` values in [k, k + 1)."""
        self.present += present
        for kind, clock in CLOCK.items():
            self.matches[kind] += whole.get(clock(time), 0)
            self.readings[kind].add(clock(time))

    def categorical(self, time: datetime, counts: Mapping[str, int]) -> None:
        self.present += sum(counts.values())
        self.by_hour[time.hour].update(counts)
        self.days.add(time.date())


def warnings(
    profile: Profile, tallies: Mapping[str, ClockTally], time_field: str, by: str | None = None
) -> list[str]:
    """One warning per feature that is the clock (none for a clock the slots of ``by`` follow)."""
    found = []
    for name, tally in tallies.items():
        if not tally.present:
            continue
        kind, share = _numeric_clock(tally) if profile.features[name].type == "numeric" else _hourly(tally)
        if kind is None or by in COVERED[kind]:
            continue
        seasonal = f", or build a seasonal profile ({SEASONAL[kind]})" if kind in SEASONAL else ""
        how = "equals the" if profile.features[name].type == "numeric" else "is one value per"
        found.append(
            f"feature {name!r} is the clock: it {how} {kind} of {time_field!r} in {share:.1%} of rows, "
            f"so it drifts against a whole-range profile all the time; leave it out of --features{seasonal}"
        )
    return found


def _numeric_clock(tally: ClockTally) -> tuple[str | None, float]:
    for kind in CLOCK:
        share = tally.matches[kind] / tally.present
        if share >= SHARE and len(tally.readings[kind]) > 1:
            return kind, share
    return None, 0.0


def _hourly(tally: ClockTally) -> tuple[str | None, float]:
    dominant = [counts.most_common(1)[0] for counts in tally.by_hour.values() if counts]
    share = sum(count for _, count in dominant) / tally.present
    distinct = {value for value, _ in dominant}
    return ("hour", share) if share >= SHARE and len(distinct) > 1 and len(tally.days) > 1 else (None, 0.0)


# --------------------------------------------------------------------------- from pandas


def frame_tallies(
    profile: Profile, frame: pd.DataFrame, time_field: str, prefix: str = ""
) -> dict[str, ClockTally]:
    """Each feature of ``profile`` against the times in ``frame[time_field]``, row by row."""
    import numpy as np
    import pandas as pd

    times = pd.to_datetime(frame[time_field], utc=True, errors="coerce")
    tallies = {}
    for name, feature in profile.features.items():
        column = frame[name.removeprefix(prefix)]
        tally = tallies[name] = ClockTally()
        if feature.type == "numeric":
            values = np.floor(pd.to_numeric(column, errors="coerce"))
            rows = [(t, v) for t, v in zip(times, values, strict=True) if pd.notna(t) and not np.isnan(v)]
            for time, value in rows:
                tally.numeric(time.to_pydatetime(), {int(value): 1} if 0 <= value <= 60 else {}, 1)
        else:
            for time, value in zip(times, column, strict=True):
                if pd.notna(time) and pd.notna(value):
                    tally.categorical(time.to_pydatetime(), {str(value): 1})
    return tallies


# --------------------------------------------------------------------------- from a store


def store_tallies(
    store: LogStore, profile: Profile, window: Window, where: Filter = MATCH_ALL
) -> dict[str, ClockTally]:
    """Each feature per minute of the first two days of ``window``, in one bucketed query."""
    start = _next_minute(window.start)
    end = min(start + SAMPLE, window.end - (window.end - start) % MINUTE)
    if end <= start:
        return {}
    aggregates: dict[str, Aggregate] = {
        name: Histogram(name, WHOLE) if feature.type == "numeric" else Terms(name, size=3)
        for name, feature in profile.features.items()
    }
    (result,) = store.evaluate(
        [Query("baseline-clock", Window(start, end), aggregates, where, buckets=MINUTE)]
    )
    if result.error is not None:
        return {}
    tallies = {name: ClockTally() for name in profile.features}
    for group in result.groups:
        time = bucket_start(group.key[BUCKET])
        for name, value in group.values.items():
            if isinstance(value, list):
                whole = {k: int(c) for k, c in enumerate(value[1:-1])}
                tallies[name].numeric(time, whole, int(sum(value)))
            elif isinstance(value, dict):
                tallies[name].categorical(time, {str(k): int(c or 0) for k, c in value.items()})
    return tallies


def _next_minute(time: datetime) -> datetime:
    floor = time.replace(second=0, microsecond=0)
    return floor if floor == time else floor + MINUTE

"""A window's answer from its buckets' partials (``watcher.store.partials``): their sum per group,
slid on from the last window of the same length, and the groups finished from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.query import Aggregate, Count, Group
from watcher.store.buckets import bucket_starts
from watcher.store.partial_values import Finisher, Layout, Part

COUNT: Aggregate = Count()
"""Every series keeps its groups' row counts: a group without rows is not in a window."""

Key = tuple[str, ...]


@dataclass
class Sum:
    """The sum of the buckets in ``[start, end)`` per group: a sliding window's running total."""

    start: datetime
    end: datetime
    totals: dict[Key, Part]


def summed(
    sums: dict[int, Sum],
    buckets: Mapping[datetime, Mapping[Key, Part]],
    layout: Layout,
    first: datetime,
    count: int,
    size: timedelta,
) -> dict[Key, Part]:
    """The sum per group of the ``count`` buckets from ``first``: slid on from the last window of
    that length in ``sums`` when they overlap (its newest buckets added, its oldest taken off),
    else added up from ``buckets``."""
    end = first + count * size
    last = sums.get(count)
    if last is not None and last.start <= first < last.end <= end:
        if last.start + size == first and last.end + size == end:  # a steady tick: one bucket on
            leaving, entering = [last.start], [last.end]
        else:
            leaving, entering = bucket_starts(last.start, first, size), bucket_starts(last.end, end, size)
        if all(start in buckets for start in (*leaving, *entering)):
            for start in entering:
                _add(layout, last.totals, buckets[start])
            for start in leaving:
                _take_off(layout, last.totals, buckets[start])
            last.start, last.end = first, end
            return last.totals
    totals: dict[Key, Part] = {}
    for start in bucket_starts(first, end, size):
        _add(layout, totals, buckets[start])
    if layout.slides and (last is None or end >= last.end):
        sums[count] = Sum(first, end, totals)  # answers are finalised copies: no aliasing
    return totals


def _add(layout: Layout, totals: dict[Key, Part], bucket: Mapping[Key, Part]) -> None:
    for key, part in bucket.items():
        total = totals.get(key)
        if total is None:
            totals[key] = layout.copy(part)
        else:
            layout.add(total, part)


def _take_off(layout: Layout, totals: dict[Key, Part], bucket: Mapping[Key, Part]) -> None:
    """Subtract a bucket that left the window; a group left without rows is dropped."""
    count = layout.index[COUNT]
    for key, part in bucket.items():
        total = totals[key]
        layout.subtract(total, part)
        if not total[count]:
            del totals[key]


def window_groups(
    group_by: tuple[str, ...],
    totals: dict[Key, Part],
    layout: Layout,
    named: Sequence[tuple[str, int, Finisher]],
) -> tuple[Group, ...]:
    """The window's groups: one always without ``group_by``, else those with rows, by key."""
    if not group_by:
        total = totals.get(()) or layout.empty()
        return (Group({}, {name: finish(total[index]) for name, index, finish in named}),)
    count = layout.index[COUNT]
    groups = [
        (
            key,
            Group(
                dict(zip(group_by, key, strict=True)),
                {name: finish(total[index]) for name, index, finish in named},
            ),
        )
        for key, total in totals.items()
        if total[count]
    ]
    groups.sort(key=_first)
    return tuple(group for _, group in groups)


def _first(keyed: tuple[Key, Group]) -> Key:
    return keyed[0]

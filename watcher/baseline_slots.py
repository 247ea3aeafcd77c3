"""Seasonal baseline profiles: one profile per hour of the day (``by: hour``, 24 slots) or per hour
of the week (``by: weekday_hour``, 168 slots), for features whose normal distribution follows
the clock (traffic mix by time of day, a feature derived from the request's hour).

A slot keeps the whole-range profile's bins -- a numeric feature's decile edges, a categorical
feature's top values and ``__other__`` -- and its own shares of rows in them, its rows with a
value, its missing rate and how many hours of the training range fell in it. Bins shared by
every slot keep the detectors' queries the same at every hour; only the reference changes.

A window is compared with the slots it overlaps (slots are whole UTC hours): each slot's shares
weigh in by the time the window spends in it times the slot's traffic (rows with a value per
training hour), so a window from 12:30 to 13:30 expects half of 12:00's traffic mix and half of
13:00's, each scaled by how busy that hour was. The expected counts are scaled to the slots'
average count over the window (the sample size the statistics see).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watcher.query import Window

SlotBy = Literal["hour", "weekday_hour"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOUR = timedelta(hours=1)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlotFeature(_Model):
    """One feature in one slot, in the bins of the whole-range feature."""

    count: int = Field(ge=0, description="rows with a value")
    missing_rate: float = Field(ge=0, le=1)
    shares: tuple[float, ...] = Field(
        description="the whole-range feature's bins: numeric underflow first and overflow last; "
        "categorical its top values, then __other__"
    )


class Slot(_Model):
    """The rows of one hour of the day (or of the week) in the training range."""

    rows: int = Field(ge=0)
    hours: float = Field(ge=0, description="hours of the training range in this slot")
    features: dict[str, SlotFeature]


def slot_names(by: SlotBy) -> list[str]:
    """Every slot of ``by``, in time order: ``00`` .. ``23``, or ``mon 00`` .. ``sun 23``."""
    hours = [f"{hour:02d}" for hour in range(24)]
    return hours if by == "hour" else [f"{day} {hour}" for day in WEEKDAYS for hour in hours]


def slot_of(time: datetime, by: SlotBy) -> str:
    """The slot ``time`` (UTC) falls in."""
    hour = f"{time.hour:02d}"
    return hour if by == "hour" else f"{WEEKDAYS[time.weekday()]} {hour}"


def slot_spans(window: Window, by: SlotBy) -> dict[str, float]:
    """Slot -> the share of ``window``'s length spent in it."""
    length = (window.end - window.start).total_seconds()
    spans: dict[str, float] = {}
    for start, end in _hours(window.start, window.end):
        name = slot_of(start, by)
        spans[name] = spans.get(name, 0.0) + (end - start).total_seconds() / length
    return spans


def range_hours(start: datetime, end: datetime, by: SlotBy) -> dict[str, float]:
    """Slot -> hours of ``[start, end)`` in it (the ``hours`` a slot was trained on)."""
    hours: dict[str, float] = dict.fromkeys(slot_names(by), 0.0)
    for low, high in _hours(start, end):
        hours[slot_of(low, by)] += (high - low) / HOUR
    return hours


def _hours(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` cut at whole hours."""
    low = start
    while low < end:
        high = min(low.replace(minute=0, second=0, microsecond=0) + HOUR, end)
        yield low, high
        low = high


def expected_counts(slots: dict[str, Slot], name: str, window: Window, by: SlotBy) -> list[float]:
    """The counts per bin that ``window`` is compared with: the overlapped slots' shares mixed by
    time spent times traffic, scaled to their average count (see the module's docstring)."""
    spans = [(slots[slot], part) for slot, part in slot_spans(window, by).items() if slot in slots]
    mixed: list[float] = []
    weights = 0.0
    size = 0.0
    for slot, part in spans:
        feature = slot.features[name]
        weight = part * (feature.count / slot.hours if slot.hours else 0.0)
        mixed = [
            a + weight * b for a, b in zip(mixed or [0.0] * len(feature.shares), feature.shares, strict=True)
        ]
        weights += weight
        size += part * feature.count
    return [share / weights * size for share in mixed] if weights else [0.0] * len(mixed)


def expected_missing_rate(slots: dict[str, Slot], name: str, window: Window, by: SlotBy) -> float:
    """The missing rate of the overlapped slots, mixed by time spent times rows per hour."""
    weighted = total = 0.0
    for slot_name, part in slot_spans(window, by).items():
        slot = slots.get(slot_name)
        if slot is None or not slot.hours or name not in slot.features:
            continue
        weight = part * slot.rows / slot.hours
        weighted += weight * slot.features[name].missing_rate
        total += weight
    return weighted / total if total else 0.0

"""Time intervals (Alertmanager's ``time_intervals``): reading their fields and telling whether a
time is inside one. Pure: no clock, no I/O.

An interval holds at a time when every field it sets holds (a field left out holds always):
``times`` (minutes of the day, start included, end excluded), ``weekdays``, ``days_of_month``
(negative counts from the month's end: -1 is its last day), ``months`` and ``years``, all
inclusive ranges read in ``location`` (UTC when unset). A named interval holds when any of its
entries holds.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = tuple(name.lower() for name in calendar.month_name[1:])


@dataclass(frozen=True)
class Span:
    """An inclusive range of numbers (weekdays 0-6 from Monday, days, months 1-12, years)."""

    begin: int
    end: int

    def __str__(self) -> str:
        return str(self.begin) if self.begin == self.end else f"{self.begin}:{self.end}"


class Times(Protocol):
    """Minutes of the day, ``start`` included and ``end`` excluded (``24:00`` is 1440)."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


class IntervalSpec(Protocol):
    """One entry of a named interval, as ``watcher.config.TimeInterval`` holds it."""

    @property
    def times(self) -> Sequence[Times] | None: ...
    @property
    def weekdays(self) -> Sequence[Span] | None: ...
    @property
    def days_of_month(self) -> Sequence[Span] | None: ...
    @property
    def months(self) -> Sequence[Span] | None: ...
    @property
    def years(self) -> Sequence[Span] | None: ...
    @property
    def location(self) -> str | None: ...


# --------------------------------------------------------------------------- reading


def clock_minutes(text: object) -> int:
    """``"09:30"`` -> 570; ``"24:00"`` is the end of the day."""
    hours, _, minutes = str(text).partition(":")
    if not (len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"{text!r} is not a time of day: use HH:MM, e.g. 09:00")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > 24 * 60:
        raise ValueError(f"{text!r} is not a time of day: use HH:MM between 00:00 and 24:00")
    return total


def weekday_span(text: object) -> Span:
    """``"monday:friday"`` -> Span(0, 4); ``"sunday"`` -> Span(6, 6)."""
    return _span(text, "weekday", lambda word: _named(word, WEEKDAYS, 0, "weekday"))


def month_span(text: object) -> Span:
    """``"january:march"`` or ``"1:3"`` -> Span(1, 3)."""
    return _span(text, "month", lambda word: _named(word, MONTHS, 1, "month"))


def day_span(text: object) -> Span:
    """``"1:5"``, ``"-3:-1"`` (the last three days), ``"15"``."""
    span = _span(text, "day of the month", _day, ordered=False)
    if (span.begin > 0) == (span.end > 0) and span.begin > span.end:
        raise ValueError(f"days_of_month range {text!r} ends before it starts")
    return span


def year_span(text: object) -> Span:
    """``"2026:2027"`` or ``"2026"``."""
    return _span(text, "year", _year)


def location(name: object) -> str:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``)."""
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown location {str(name)!r}: use an IANA time zone such as Europe/Berlin"
        ) from None
    return str(name)


def _span(text: object, what: str, read: _Reader, ordered: bool = True) -> Span:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"a {what} range is a string such as '1:5', got {text!r}")
    first, colon, last = str(text).strip().partition(":")
    begin = read(first.strip())
    end = read(last.strip()) if colon else begin
    if ordered and begin > end:
        raise ValueError(f"{what} range {str(text)!r} ends before it starts")
    return Span(begin, end)


class _Reader(Protocol):
    def __call__(self, word: str, /) -> int: ...


def _named(word: str, names: Sequence[str], first: int, what: str) -> int:
    if word.lower() in names:
        return names.index(word.lower()) + first
    if what == "month" and word.isdigit() and 1 <= int(word) <= 12:
        return int(word)
    raise ValueError(f"unknown {what} {word!r} (expected one of: {', '.join(names)})")


def _day(word: str) -> int:
    day = int(word) if word.lstrip("-").isdigit() else 0
    if day == 0 or not -31 <= day <= 31:
        raise ValueError(f"{word!r} is not a day of the month: use 1 to 31, or -1 to -31 from the end")
    return day


def _year(word: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise ValueError(f"{word!r} is not a year, e.g. 2026")
    return int(word)


# --------------------------------------------------------------------------- matching


def holds(entries: Sequence[IntervalSpec], at: datetime) -> bool:
    """Whether any entry of a named interval holds at ``at`` (an aware time)."""
    return any(_entry_holds(entry, at) for entry in entries)


def _entry_holds(entry: IntervalSpec, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(entry.location) if entry.location else UTC)
    minute = local.hour * 60 + local.minute
    if entry.times is not None and not any(t.start <= minute < t.end for t in entry.times):
        return False
    if entry.weekdays is not None and not _within(local.weekday(), entry.weekdays):
        return False
    if entry.days_of_month is not None and not _on_day(local, entry.days_of_month):
        return False
    if entry.months is not None and not _within(local.month, entry.months):
        return False
    return entry.years is None or _within(local.year, entry.years)


def _within(value: int, spans: Sequence[Span]) -> bool:
    return any(span.begin <= value <= span.end for span in spans)


def _on_day(local: datetime, spans: Sequence[Span]) -> bool:
    """Negative days count from the month's end; a range reaching past the month is cut at it."""
    length = calendar.monthrange(local.year, local.month)[1]
    for span in spans:
        begin = span.begin if span.begin > 0 else length + span.begin + 1
        end = span.end if span.end > 0 else length + span.end + 1
        if begin <= length and max(begin, 1) <= local.day <= min(end, length):
            return True
    return False

"""Document-level aggregates: what a store finds document by document about the values of fields
(every distinct value with its first and last times, the values new in a window, the last value
before a time), for the ``change`` and ``new_value`` detectors. Kept apart from ``watcher.query``,
whose ``Aggregate`` union includes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

VALUES_LIMIT = 1000
"""Distinct values a ``Values`` answer lists per group (per bucket): more and it is ``None``."""


@dataclass(frozen=True)
class Seen:
    """One value a document-level aggregate found (one string per field, as group keys are), with
    the times of its first and last documents (to the millisecond, the search store's precision)
    and how many documents hold it."""

    value: tuple[str, ...]
    first: datetime
    last: datetime
    count: int


def by_first(found: Iterable[Seen]) -> tuple[Seen, ...]:
    """Values in the one order every store answers with: by first time, then by value."""
    return tuple(sorted(found, key=lambda seen: (seen.first, seen.value)))


NEW_VALUES_LIMIT = 10_000
"""Distinct values a ``FirstSeen`` may meet in its window (its lookback): past it, the answer is ``None``."""


@dataclass(frozen=True)
class Timeline:
    """Every distinct value of ``fields`` (documents lacking one of them are left out) among the
    documents at or after ``since`` (the whole window when None), with first and last times and
    counts. Result: a tuple of ``Seen`` by first time, or ``None`` past ``limit`` distinct values.

    Why ``since`` within the window: ``change`` reads the values of its window and the last value
    before it (``Latest``) in one query, so the lookback is never judged as a window of its own."""

    fields: tuple[str, ...]
    since: datetime | None = None
    limit: int = VALUES_LIMIT


@dataclass(frozen=True)
class FirstSeen:
    """The values of ``fields`` whose first document in the window is at or after ``since``: new
    values, that the part of the window before ``since`` (the lookback) never saw. Computed in the
    store over every value of the window, only the new ones come back. Result: a tuple of ``Seen``
    by first time, or ``None`` when the window holds more than ``limit`` distinct values (the store
    cannot then tell which are new)."""

    fields: tuple[str, ...]
    since: datetime
    limit: int = NEW_VALUES_LIMIT


@dataclass(frozen=True)
class Latest:
    """The value of ``field`` in the group's last document before ``before`` that has one (on equal
    times the smallest value, as text). Result: that value as a string, or ``None``."""

    field: str
    before: datetime


DocumentAggregate: TypeAlias = Timeline | FirstSeen | Latest

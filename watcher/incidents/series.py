"""The recent values of an incident's signal, kept on the incident for charts.

Raw log data never leaves the store, and notifiers may not query it, so the only history a
notification can draw is what the state machine saw: each evaluation of a pending or firing
incident (and the one that resolves it) appends ``[at, value]`` to ``details["series"]``. The
series is bounded (``MAX_SAMPLES``, ``HORIZON``) so an incident's row stays small, and it is
carried into the next episode of the same incident, so a re-fire still shows what came before.
Samples are JSON-ready (``[ISO-8601 time, float]``) because details are stored as JSON.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

SERIES_KEY = "series"
MAX_SAMPLES = 120  # two hours of a rule evaluated every minute
HORIZON = timedelta(hours=6)  # older samples are dropped even when there are fewer

Sample = tuple[datetime, float]


def recorded(
    details: Mapping[str, Any], previous: Mapping[str, Any] | None, value: float | None, at: datetime
) -> dict[str, Any]:
    """``details`` (a detector's, for this evaluation) plus the series of ``previous`` (the
    incident's details before it) with ``(at, value)`` appended. A missing or non-finite value
    adds nothing; a sample at or before the last one replaces the samples it overlaps (a
    re-evaluation after a crash records the same time twice).

    The samples kept are the very ``[time, value]`` lists of ``previous`` when its series is as
    this function writes it (``_written_times``), so an incident's encoding reuses their text
    (``Incident.encoded``); otherwise they are read one by one and written afresh."""
    raw = previous.get(SERIES_KEY) if previous else None
    moments = _WRITTEN.times(raw) if type(raw) is list else None
    if moments is None:
        moments = _written_times(raw)
    entries: list[list[Any]]
    times: list[datetime] | None = None  # the times of ``entries`` when they are as written here
    if moments is not None and type(raw) is list:
        lo, hi = bisect.bisect_right(moments, at - HORIZON), bisect.bisect_left(moments, at)
        entries, times = raw[lo:hi], moments[lo:hi]
    else:
        kept = [s for s in samples(previous or {}) if s[0] < at and s[0] > at - HORIZON]
        entries = [[_iso(moment), number] for moment, number in kept]
        times = [] if not entries else None
    if value is not None and math.isfinite(value):
        entries.append([_iso(at), float(value)])
        moment = _canonical(entries[-1][0])
        times = None if times is None or moment is None else [*times, moment]
    series = entries[-MAX_SAMPLES:]
    if times is not None:
        _WRITTEN.keep(series, times[-MAX_SAMPLES:])
    return {**dict(details), SERIES_KEY: series}


class _Written:
    """The times of the series ``recorded`` wrote lately, by the list's identity: the next step
    of the same incident gets that very list back (the state store keeps the snapshots it wrote,
    ``StateStore.decoded``), and checking all its entries again at every step was most of the
    step of a raised incident. A list is known only while its length and last entry are as
    written (snapshots are immutable; anything else is checked in full); the oldest half is
    dropped once ``LIMIT`` are kept, so about the open incidents of the last tick stay."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._kept: dict[int, tuple[list[list[Any]], Any, list[datetime]]] = {}

    def keep(self, series: list[list[Any]], times: list[datetime]) -> None:
        if len(self._kept) >= self.LIMIT:
            for key in list(itertools.islice(self._kept, self.LIMIT // 2)):
                del self._kept[key]
        self._kept[id(series)] = (series, series[-1] if series else None, times)

    def times(self, raw: list[Any]) -> list[datetime] | None:
        found = self._kept.get(id(raw))
        if found is None:
            return None
        series, last, times = found
        if series is not raw or len(raw) != len(times) or (raw[-1] if raw else None) is not last:
            return None
        return times


_WRITTEN = _Written()


def written(series: list[Any]) -> bool:
    """Whether ``series`` is one ``recorded`` wrote lately, as it wrote it: ``[ISO time, float]``
    pairs alone, so JSON gives it back equal (``Incident.reads_back``)."""
    return _WRITTEN.times(series) is not None


def _written_times(raw: Any) -> list[datetime] | None:
    """The times of a series as ``recorded`` writes it (``[ISO time, finite float]`` lists, times
    as ``isoformat`` writes them, strictly increasing), or None for any other. Checked in bulk,
    not entry by entry: every step of a raised incident reads its whole series."""
    if type(raw) is not list or not set(map(type, raw)) <= {list} or not set(map(len, raw)) <= {2}:
        return None
    texts = list(map(operator.itemgetter(0), raw))
    values = list(map(operator.itemgetter(1), raw))
    if not set(map(type, texts)) <= {str} or not set(map(type, values)) <= {float}:
        return None
    moments = list(map(_canonical, texts))
    if None in moments or not all(map(math.isfinite, values)):
        return None
    times = cast(list[datetime], moments)
    return times if all(map(operator.lt, times, times[1:])) else None


def samples(details: Mapping[str, Any], key: str = SERIES_KEY) -> list[Sample]:
    """The series of some incident details (or another ``[time, value]`` list of them, such as a
    forecast's ``forecast``), oldest first; malformed entries are skipped."""
    raw = details.get(key)
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return []
    found: list[Sample] = []
    for entry in raw:
        sample = _sample(entry)
        if sample is not None:
            found.append(sample)
    return sorted(found)


def _sample(entry: Any) -> Sample | None:
    # Exact types first: every step of a raised incident reads its whole series (up to
    # MAX_SAMPLES entries), and the Sequence ABC check was most of it.
    if type(entry) is not list and (not isinstance(entry, Sequence) or isinstance(entry, str)):
        return None
    if len(entry) != 2:
        return None
    moment, value = entry
    try:
        at = moment if isinstance(moment, datetime) else _parsed(str(moment))
        number = float(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None or not math.isfinite(number):
        return None
    return at, number


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> datetime:
    """A sample's time, parsed once while it stays in the series (each step reads them all)."""
    return datetime.fromisoformat(text)


@functools.lru_cache(maxsize=4096)
def _canonical(text: str) -> datetime | None:
    """A sample's time when ``text`` is its ``isoformat`` with a time zone (as ``recorded`` writes
    it), else None; parsed once while it stays in the series."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None and moment.isoformat() == text else None


@functools.lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    """A sample's time as written, formatted once while it stays in the series."""
    return moment.isoformat()

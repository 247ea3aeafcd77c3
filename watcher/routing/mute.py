"""Muting: silences and inhibitions behind one ``Muter`` protocol, used by one mute stage.

A muted incident is still tracked (state machine, ``watcher incidents``); it is only left out of
notifications. The dispatcher asks the mute stage at each flush, so an incident whose silence
ends, or whose inhibiting incident resolves, is notified at its group's next flush.

A route's time intervals are one more muter, per route (``TimeMute``): they mute a whole group.
The dispatcher holds a group muted by time instead of dropping its resolved episodes: an episode
whose firing was told is told resolved at the first flush after the interval ends; one whose
firing never was is dropped, as with a silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from watcher.config import InhibitRule
from watcher.incidents.model import Incident
from watcher.routing.intervals import IntervalSpec, holds
from watcher.routing.matchers import matches_all
from watcher.routing.tree import RouteMatch

Intervals = Mapping[str, Sequence[IntervalSpec]]
"""Named time intervals (``time_intervals:`` in watcher.yaml) by name."""


class Muter(Protocol):
    """Anything that can mute an incident by its labels (a set of silences, the inhibitor)."""

    def mutes(self, labels: Mapping[str, str]) -> bool: ...


class MuteStage:
    """The one mute stage: an incident is muted when any of ``muters`` mutes it."""

    def __init__(self, muters: Sequence[Muter]) -> None:
        self.muters = tuple(muters)

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return any(muter.mutes(labels) for muter in self.muters)


class Inhibitor:
    """Inhibition rules against the incidents firing now (Alertmanager's semantics).

    An incident matching a rule's ``target`` is muted while another firing incident matches its
    ``source`` and has the same values for the ``equal`` labels (a label both lack counts as
    equal). An incident matching both sides does not inhibit itself.
    """

    def __init__(self, rules: Sequence[InhibitRule], firing: Iterable[Incident]) -> None:
        labels = [dict(incident.labels) for incident in firing]
        self._sources = [(rule, [s for s in labels if matches_all(rule.source, s)]) for rule in rules]

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return self.inhibited_by(labels) is not None

    def inhibited_by(self, labels: Mapping[str, str]) -> Mapping[str, str] | None:
        """The labels of an incident inhibiting one with ``labels``, or None."""
        for rule, sources in self._sources:
            if not sources or not matches_all(rule.target, labels):
                continue
            for source in sources:
                if source != labels and all(source.get(n, "") == labels.get(n, "") for n in rule.equal):
                    return source
        return None


class TimeMute:
    """A route's ``mute_time_intervals`` and ``active_time_intervals`` at ``now``: everything on
    the route is muted while a mute interval holds, or while none of its active intervals does."""

    def __init__(self, route: RouteMatch, intervals: Intervals, now: datetime) -> None:
        self.route = route
        self.muting = next((name for name in route.mute_time_intervals if holds(intervals[name], now)), None)
        active = route.active_time_intervals
        self.inactive = bool(active) and not any(holds(intervals[name], now) for name in active)

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return self.muting is not None or self.inactive

    def reason(self) -> str:
        """Why the route is muted, for ``watcher routes test`` ('' when it is not)."""
        if self.muting is not None:
            return f"muted: in mute_time_intervals {self.muting!r}"
        if self.inactive:
            names = ", ".join(map(repr, self.route.active_time_intervals))
            return f"muted: outside active_time_intervals {names}"
        return ""

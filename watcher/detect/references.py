"""Reference windows: which earlier windows a spike or drift rule compares with, which of them are
left out and why, and how the rest are combined.

A rule's ``reference: {offset: 1d, count: 7, combine: median}`` names ``count`` windows, ``offset``
apart, back from its own (``watcher.rules.references.ReferenceSpec``). The engine leaves a window
out for every group when the source holds no data for it (before the first log line, a configured
store gap: ``watcher.store.coverage``) and for one group when it overlaps a raised episode of that
rule and group (``watcher.incidents.episodes``): yesterday's incident is not today's normal. The
detector combines what is left -- spike the signal's value per window, drift each bin's count --
and, when nothing is left, says "not enough reference data" with the reasons.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from watcher.detect.base import rule_window
from watcher.incidents.episodes import Episode
from watcher.incidents.model import fingerprint
from watcher.query import AggValue, Window
from watcher.rules.models import Rule
from watcher.rules.references import Combine, ReferenceSpec

Values = Mapping[str, AggValue]


@dataclass(frozen=True)
class Exclusions:
    """The reference windows left out of one evaluation, by position (1: ``offset`` back), with
    why: for every group (``windows``), or for the group of one incident (``incidents``, by
    fingerprint)."""

    windows: Mapping[int, str] = field(default_factory=dict)
    incidents: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    def of(self, rule: Rule, group: Mapping[str, str]) -> dict[int, str]:
        """The windows left out for ``group`` of ``rule``, with why, nearest first."""
        found = {**self.windows, **self.incidents.get(fingerprint(rule.name, group), {})}
        return dict(sorted(found.items()))


NOTHING_EXCLUDED = Exclusions()


def reference_of(rule: Rule) -> ReferenceSpec | None:
    """The rule's reference windows, or None when it has none (zscore history is not one)."""
    if rule.spike is not None:
        return rule.spike.references
    if rule.drift is not None:
        return rule.drift.reference
    return None


def reference_windows(rule: Rule, at: datetime) -> list[Window]:
    """The rule's reference windows at ``at``, nearest first."""
    spec = reference_of(rule)
    if spec is None:
        return []
    window = rule_window(rule, at)
    return [window.shifted(shift) for shift in spec.shifts()]


def overlapping_incidents(
    rule: Rule, windows: Sequence[Window], episodes: Sequence[Episode]
) -> dict[str, dict[int, str]]:
    """The reference windows each incident of ``rule`` overlaps. An episode's data is that of its
    evaluations' windows: from its first alerting window's start to the end of the window that
    resolved it (or of its latest alerting one)."""
    found: dict[str, dict[int, str]] = {}
    for episode in episodes:
        if episode.rule != rule.name:
            continue
        start = episode.started_at - rule.delay - rule.window
        end = episode.ended_at - rule.delay
        for position, window in enumerate(windows, 1):
            if window.start < end and start < window.end:
                found.setdefault(episode.fingerprint, {})[position] = _incident_reason(episode)
    return found


def _incident_reason(episode: Episode) -> str:
    start, end = episode.started_at, episode.ended_at
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"in the incident from {start:%Y-%m-%d %H:%M} to {until} UTC"


def combine(numbers: Sequence[float], how: Combine) -> float:
    """The median or mean of ``numbers`` (at least one)."""
    return float(statistics.median(numbers) if how == "median" else statistics.fmean(numbers))


def combine_counts(windows: Sequence[Values], how: Combine) -> Values:
    """Several windows' counts as one, key by key, rounded to whole counts: document counts, each
    histogram bin and each counted value (a value a window lacks counts 0 there; a key a window
    lacks, 0). One window is itself."""
    if len(windows) == 1:
        return windows[0]
    combined: dict[str, AggValue] = {}
    for key in dict.fromkeys(key for window in windows for key in window):
        present = [window[key] for window in windows if key in window]
        first = present[0]
        if isinstance(first, list):
            rows = [value for value in present if isinstance(value, list) and len(value) == len(first)]
            combined[key] = [round(combine(column, how)) for column in zip(*rows, strict=True)]
        elif isinstance(first, dict):
            maps: list[Mapping[str, object]] = [
                {str(label): count for label, count in value.items()}
                for value in present
                if isinstance(value, dict)
            ]
            labels = dict.fromkeys(label for counts in maps for label in counts)
            combined[key] = {
                label: round(combine([_number(counts.get(label)) for counts in maps], how))
                for label in labels
            }
        else:
            combined[key] = round(combine([_number(window.get(key)) for window in windows], how))
    return combined


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def excluded_reason(reasons: Sequence[str]) -> str:
    """``reference windows excluded: 2 in the incident from ..., 1 before the first log line``."""
    counted = Counter(reasons)
    return "reference windows excluded: " + ", ".join(f"{n} {why}" for why, n in counted.items())

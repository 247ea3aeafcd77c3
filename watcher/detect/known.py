"""The groups a grouped rule knows, beyond those in an evaluation's answer.

A group that received no documents is absent from the store's answer. To judge it anyway (a
per-group flatline fires when one group drops to zero), the detector is given the rule's *known
groups*, evaluated as empty groups (count 0) when missing: those with an open incident, and
those seen with data within ``groups_from`` before the window's end (``Rule.known_groups_lookback``:
a grouped flatline has it by default).

The engine keeps, per rule, a map group -> the end of the last evaluated window in which the
group had data, updated from every evaluation's own answers. It is seeded once after a start or
a reload by one lookback query (count by ``group_by`` over ``[end - groups_from, end)``), sent in
the tick's batched store call, so it costs no round trip and the lookback is read once, not at
every evaluation. The seed is imprecise in one direction only: a group it finds counts as seen
at the lookback's *end* (it may have left up to ``groups_from`` earlier), and a group with an
open incident that it does not find counts as seen at the lookback's *start*. So a group is
known, and forgotten, up to ``groups_from`` later than exact times would say, never earlier.
A failed seed is sent again with the next evaluation; until one succeeds only the groups with
an open incident are known, so a store error is never a flatline.

``forget_after``: a group with no data for that long is forgotten: dropped from the map, no
longer evaluated, and its open incident resolved by the engine with ``forgotten_note``. A rule
with ``forget_after`` and no ``groups_from`` is seeded by its first evaluation (no extra query).
Entries older than ``groups_from`` and ``forget_after`` are dropped: the memory is bounded by the
groups seen within that time.

The detectors stay pure: this is the engine's memory, kept next to them because it decides
which groups they judge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.detect.base import rule_window
from watcher.detect.groups import GroupKey, group_key
from watcher.detect.signal import COUNT
from watcher.duration import format_duration
from watcher.query import Count, Query, QueryResult, Window
from watcher.rules.models import Rule

log = logging.getLogger("watcher.detect.known")

Labels = Mapping[str, str]
Answer = tuple[Sequence[Query], Sequence[QueryResult]]
"""An evaluation's queries and the store's results, in the same order."""


@dataclass(frozen=True)
class Known:
    """The groups one evaluation judges besides those in its answer, and the groups it forgets."""

    groups: list[Labels]
    forgotten: list[Labels] = field(default_factory=list)


def tracks(rule: Rule) -> bool:
    """Whether the rule knows groups beyond its open incidents, or forgets groups."""
    return bool(rule.group_by) and (rule.known_groups_lookback is not None or rule.forget_after is not None)


def forgotten_note(rule: Rule, group: Labels) -> str:
    """The note a forgotten group's incident resolves with."""
    labels = ", ".join(f"{name}={value}" for name, value in sorted(group.items()))
    after = format_duration(rule.forget_after or timedelta(0))
    return f"no data from {labels} for {after} (forget_after): this group is no longer watched"


class RuleGroups:
    """One rule's map of groups to when they were last seen with data (a window's end)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.last_seen: dict[GroupKey, tuple[Labels, datetime]] = {}
        self.since: datetime | None = None
        """seeded: every group with data since this time is in ``last_seen`` (None: not yet)"""

    def seed_query(self, at: datetime) -> Query | None:
        """The lookback query, while the map is not seeded (None for a rule seeded by its evaluations)."""
        lookback = self.rule.known_groups_lookback
        if self.since is not None or lookback is None:
            return None
        end = rule_window(self.rule, at).end
        rule = self.rule
        return Query(f"{rule.name}#known-groups", Window(end - lookback, end), {COUNT: Count()},
                     rule.where, rule.group_by)  # fmt: skip

    def seeded_by(self, result: QueryResult, at: datetime) -> None:
        """Take the lookback's answer: its groups count as seen at its end."""
        if not result.ok:
            log.warning("rule %s: the lookback for known groups failed, sent again next time: %s",
                        self.rule.name, result.error, extra={"rule": self.rule.name})  # fmt: skip
            return
        end = rule_window(self.rule, at).end
        self._saw(result, end)
        self.since = end - (self.rule.known_groups_lookback or self.rule.window)

    def known(self, at: datetime, answer: Answer, open_groups: Sequence[Labels]) -> Known:
        """The groups to evaluate at ``at`` besides the answer's, and those forgotten now (never
        one the answer has: a group back after a long silence is not forgotten by its return)."""
        if self.since is None:
            return Known(list(open_groups))  # not seeded: only open incidents, as without a lookback
        end = rule_window(self.rule, at).end
        last = dict(self.last_seen)
        for group in open_groups:
            last.setdefault(group_key(group), (group, self.since))
        for key in self._present(end, answer):
            last.pop(key, None)  # in the answer: judged as it is, neither known nor forgotten
        lookback, forget = self.rule.known_groups_lookback, self.rule.forget_after
        open_keys = {group_key(group) for group in open_groups}
        known, forgotten = [], []
        for key, (group, seen) in last.items():
            if forget is not None and seen <= end - forget:
                forgotten.append(group)
            elif key in open_keys or (lookback is not None and seen >= end - lookback):
                known.append(group)
        return Known(known, forgotten)

    def record(self, at: datetime, answer: Answer, known: Known) -> None:
        """After an answered evaluation: forgotten groups dropped, the answer's groups seen at its
        window's end, and entries past every horizon dropped."""
        end = rule_window(self.rule, at).end
        for group in known.forgotten:
            self.last_seen.pop(group_key(group), None)
        for key, group in self._present(end, answer).items():
            self.last_seen[key] = (group, end)
        if self.since is None and self.rule.known_groups_lookback is None:
            self.since = end - self.rule.window  # forget_after alone: the first evaluation seeds
        horizon = max(self.rule.known_groups_lookback or timedelta(0), self.rule.forget_after or timedelta(0))
        self.last_seen = {key: entry for key, entry in self.last_seen.items() if entry[1] >= end - horizon}

    def _present(self, end: datetime, answer: Answer) -> dict[GroupKey, Labels]:
        """The groups with data in the rule's own window (not a reference window's)."""
        rule, (queries, results) = self.rule, answer
        present: dict[GroupKey, Labels] = {}
        for query, result in zip(queries, results, strict=True):
            if query.window.end == end and (query.group_by, query.where) == (rule.group_by, rule.where):
                present.update((group_key(group.key), group.key) for group in result.groups)
        return present

    def _saw(self, result: QueryResult, end: datetime) -> None:
        for group in result.groups:
            key = group_key(group.key)
            previous = self.last_seen.get(key)
            if previous is None or previous[1] < end:
                self.last_seen[key] = (group.key, end)


class KnownGroups:
    """The engine's per-rule ``RuleGroups``, kept across reloads for rules that did not change."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: dict[str, RuleGroups] = {}
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """A new or edited rule starts unseeded (one lookback query); an unchanged one keeps its map."""
        kept: dict[str, RuleGroups] = {}
        for rule in rules:
            if tracks(rule):
                current = self.rules.get(rule.name)
                kept[rule.name] = (
                    current if current is not None and current.rule == rule else RuleGroups(rule)
                )
        self.rules = kept

    def seed_query(self, rule: Rule, at: datetime) -> Query | None:
        groups = self.rules.get(rule.name)
        return None if groups is None else groups.seed_query(at)

    def known(
        self,
        rule: Rule,
        at: datetime,
        answer: Answer,
        seed: QueryResult | None,
        open_groups: Sequence[Labels],
    ) -> Known:
        """The groups ``rule`` judges at ``at`` (after taking the lookback's answer, if one came)."""
        groups = self.rules.get(rule.name)
        if groups is None:
            return Known(list(open_groups))
        if seed is not None:
            groups.seeded_by(seed, at)
        return groups.known(at, answer, open_groups)

    def record(self, rule: Rule, at: datetime, answer: Answer, known: Known) -> None:
        """Remember an answered evaluation of ``rule`` (see ``RuleGroups.record``)."""
        groups = self.rules.get(rule.name)
        if groups is not None:
            groups.record(at, answer, known)

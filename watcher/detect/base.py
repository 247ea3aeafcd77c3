"""What every detector produces, and the interface a detector module implements.

A detector is a pure function of aggregated numbers: ``queries`` says what it needs from the
store for one evaluation at time ``at``; ``evaluate`` turns the answers into one ``Finding`` per
group. No I/O, no clock: ``backtest`` and ``run`` share them unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from watcher.query import Aggregate, Query, QueryResult, Sample, Window
from watcher.query_filters import Filter
from watcher.rules.models import Rule

if TYPE_CHECKING:
    from watcher.detect.references import Exclusions


class Status(StrEnum):
    """What a detector concluded for one group."""

    ALERTING = "alerting"
    OK = "ok"
    NO_DATA = "no_data"  # fewer than min_events documents: keeps the incident's state as it is
    ERROR = "error"  # the store failed for this query: keeps the state, never fires or resolves


@dataclass(frozen=True)
class Finding:
    """A detector's verdict for one group of one rule at one evaluation."""

    rule: str
    group: Mapping[str, str]
    status: Status
    value: float | None = None
    threshold: float | None = None
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    severity: str | None = None
    """the severity the evidence reached (a threshold's levels, drift's critical); None: the rule's"""
    evidence: tuple[Sample, ...] = ()
    """sample documents of an alerting group, redacted (``watcher.detect.evidence``)"""

    def evolve(self, **changes: Any) -> Finding:
        """This finding with ``changes``. Its fields copied at once, not through ``replace``,
        which checks every field and sets each through the frozen ``__init__``: every alerting
        finding gets its evidence this way at every evaluation."""
        if not changes.keys() <= _FINDING_FIELDS:
            return replace(self, **changes)  # its TypeError names the unknown field
        evolved = object.__new__(Finding)
        evolved.__dict__.update(self.__dict__)
        evolved.__dict__.update(changes)
        return evolved


_FINDING_FIELDS = frozenset(item.name for item in fields(Finding))


def rule_window(rule: Rule, at: datetime) -> Window:
    """The window a rule evaluates at ``at``: ``[at - delay - window, at - delay)``."""
    end = at - rule.delay
    return Window(end - rule.window, end)


def rule_query(
    rule: Rule,
    window: Window,
    aggregates: Mapping[str, Aggregate],
    tag: str = "main",
    where: Filter | None = None,
) -> Query:
    """The query a detector sends for ``rule``: its filter (or ``where``, which a detector narrows
    it to) and grouping over ``window``, with id ``<rule>#<tag>`` (tags tell a rule's several
    windows apart)."""
    return Query(
        id=f"{rule.name}#{tag}",
        window=window,
        aggregates=aggregates,
        where=rule.where if where is None else where,
        group_by=rule.group_by,
    )


class Detector(Protocol):
    """A detector module exposes these two functions (see ``watcher.detect.DETECTORS``)."""

    def queries(self, rule: Rule, at: datetime) -> list[Query]: ...

    def evaluate(
        self,
        rule: Rule,
        results: Sequence[QueryResult],
        at: datetime,
        known_groups: Sequence[Mapping[str, str]] = (),
        excluded: Exclusions = ...,
    ) -> list[Finding]:
        """One finding per group in the results, plus one per ``known_groups`` entry (groups with an
        open incident or seen within ``groups_from``, see ``watcher.detect.known``) that the results
        lack: those are evaluated as empty groups (count 0), so a flatline on a vanished group fires
        and ``min_events`` keeps a quiet group's state.

        ``excluded``, the reference windows left out (``watcher.detect.references``), is passed
        only to the detectors of rules with a ``reference``; the others need not take it."""
        ...

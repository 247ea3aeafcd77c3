"""What each rule did in a backtest, so a rule that could not judge is never silent.

A backtest that prints no notification can mean quiet traffic or a rule that never saw enough
data (``min_samples`` not reached, every window before the first log line) or whose store failed.
The summary counts, per rule, its evaluations, those with not enough data (every group it judged
was "not enough data"), those with an error, and its fires; ``nodata`` records say when a rule's
group enters and leaves not-enough-data, with the reason. A drift rule whose scores reached a level
that its test held back as sampling noise says in how many evaluations, with the last reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from watcher.cli.common import columns
from watcher.detect.base import Status
from watcher.detect.drift import within_noise
from watcher.incidents.model import Event, fingerprint
from watcher.tick_report import Evaluation, TickReport


@dataclass
class RuleTally:
    """One rule's evaluations over the backtest."""

    evaluations: int = 0
    nodata: int = 0
    errors: int = 0
    fires: int = 0
    last_reason: str = ""
    last_at: datetime | None = None
    noise: int = 0  # evaluations with a drift level held back as sampling noise
    last_noise: str = ""

    def nodata_share(self) -> float:
        return self.nodata / self.evaluations if self.evaluations else 0.0


@dataclass(frozen=True)
class NoDataChange:
    """A rule's group entering (``state="entered"``) or leaving not-enough-data at ``at``;
    ``reason`` is the detector's (or the coverage's) last word on why it could not judge."""

    rule: str
    group: Mapping[str, str]
    at: datetime
    state: str
    reason: str

    def record(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "group": dict(self.group),
            "event": "nodata",
            "at": _iso(self.at),
            "state": self.state,
            "reason": self.reason,
        }


@dataclass
class Summary:
    """Fed every tick of a backtest: the per-rule tallies and the not-enough-data changes."""

    tallies: dict[str, RuleTally]
    _blind: dict[str, str] = field(default_factory=dict)  # fingerprint -> its last reason

    @classmethod
    def of(cls, rules: Sequence[str]) -> Summary:
        return cls({name: RuleTally() for name in rules})

    def add(self, report: TickReport) -> list[NoDataChange]:
        """Count the tick's evaluations and fires; the groups that entered or left not-enough-data."""
        changes: list[NoDataChange] = []
        for evaluation in report.evaluated:
            changes += self._evaluation(evaluation)
        for transition in report.transitions:
            if transition.event is Event.FIRING:
                self.tallies[transition.incident.rule].fires += 1
        return changes

    def _evaluation(self, evaluation: Evaluation) -> list[NoDataChange]:
        tally = self.tallies.setdefault(evaluation.rule, RuleTally())
        tally.evaluations += 1
        tally.errors += evaluation.error
        findings = evaluation.findings
        if findings and all(finding.status is Status.NO_DATA for finding in findings):
            tally.nodata += 1
        if noisy := [finding for finding in findings if within_noise(finding)]:
            tally.noise, tally.last_noise = tally.noise + 1, noisy[-1].reason
        changes = []
        for finding in findings:
            key = fingerprint(evaluation.rule, finding.group)
            if finding.status is Status.NO_DATA:
                tally.last_reason, tally.last_at = finding.reason, evaluation.at
                if key not in self._blind:
                    changes.append(
                        NoDataChange(evaluation.rule, finding.group, evaluation.at, "entered", finding.reason)
                    )
                self._blind[key] = finding.reason
            elif key in self._blind:
                reason = self._blind.pop(key)
                changes.append(NoDataChange(evaluation.rule, finding.group, evaluation.at, "left", reason))
        return changes

    def print(self, out: TextIO) -> None:
        """The per-rule table, then for each rule that had not enough data its last reason."""
        header = ("rule", "evaluations", "not enough data", "errors", "fires")
        cells = [
            (name, str(t.evaluations), f"{t.nodata} ({t.nodata_share():.0%})", str(t.errors), str(t.fires))
            for name, t in sorted(self.tallies.items())
        ]
        print(columns([header, *cells]), file=out)
        for name, tally in sorted(self.tallies.items()):
            if tally.last_reason:
                print(f"{name}: {tally.last_reason} (last at {_iso(tally.last_at)})", file=out)
        for name, tally in sorted(self.tallies.items()):
            if tally.noise:
                print(
                    f"{name}: a drift level within sampling noise, not counted, in {tally.noise} of "
                    f"{tally.evaluations} evaluations (last: {tally.last_noise})",
                    file=out,
                )


def _iso(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat().replace("+00:00", "Z")

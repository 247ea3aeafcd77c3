"""Evidence rides with the evaluation: the query for an alert's sample documents, and the
findings that carry them.

The engine adds one ``Samples`` query per evaluation of a rule that shows evidence: the rule's
window, with the filter and grouping of the detector's first query. Both stores fuse it with that
query when their windows are the same (every aggregate detector): a ``top_hits`` in the same group
bucket of the same search, an ``arg_max`` in the same branch of the same DuckDB statement; else it
is one more search in the same ``_msearch`` request, one more scope of the same statement. So
evidence costs bytes, never a round trip -- except through per-bucket partials, which ask it only
when a group alerts (``only_if``), on a search store in a second request of the tick an alert
starts. The
detectors never see it: ``with_evidence`` hands each alerting finding its group's documents,
redacted and cut (``watcher.rules.evidence.cleaned``) before anything keeps them.

Rules whose alert is an absence (a flatline, a threshold with only ``below``) show none: the
documents of a quiet window prove nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from watcher.detect import threshold
from watcher.detect.base import Finding, Status, rule_window
from watcher.detect.derived import derived
from watcher.detect.groups import group_key
from watcher.query import Condition, Documents, Group, Query, QueryResult, Samples
from watcher.query_filters import MATCH_ALL
from watcher.rules.evidence import cleaned
from watcher.rules.models import Rule

EVIDENCE = "evidence"
"""The aggregate name (and query tag) of the sample documents."""


def shows_evidence(rule: Rule) -> bool:
    """Whether the rule's alerts carry sample documents."""
    if not rule.evidence.enabled or rule.flatline is not None:
        return False
    return rule.threshold is None or rule.threshold.above_levels is not None


def evidence_query(rule: Rule, queries: Sequence[Query], at: datetime) -> Query | None:
    """The query for the sample documents of the window evaluated at ``at``, with the filter and
    grouping of the detector's first query (a ``values`` rule's offending documents, say), or
    ``None`` when the rule shows none. For a ratio, the documents its ``of`` counts; for a
    percentile or stat signal, unless the rule sorts otherwise, those with the largest values of
    its field. The window is the rule's own even when the detector reads a longer one
    (``new_value``'s lookback)."""
    if not queries or not shows_evidence(rule):
        return None
    own, window = queries[0], rule_window(rule, at)
    only_if = _when_alerting(rule, own) if window == own.window else None
    return Query(f"{rule.name}#{EVIDENCE}", window, {EVIDENCE: _samples(rule)}, own.where, own.group_by,
                 only_if=only_if)  # fmt: skip


@derived
def _samples(rule: Rule) -> Samples:
    """The rule's sample documents, made once per rule: the same object at every evaluation, which
    the search store knows a query's fields by."""
    spec = rule.evidence
    of = rule.signal.ratio.of if rule.signal.ratio is not None else MATCH_ALL
    sort, ascending = (spec.sort_field, spec.ascending) if spec.sort else (_measured_field(rule), False)
    return Samples(of, spec.size, spec.fields, sort, ascending)


def _when_alerting(rule: Rule, own: Query) -> Condition | None:
    """For a threshold, validity or drift (against a profile) rule, the condition that a group of
    its own answer alerts: a store that knows that answer before reading the window (from
    per-bucket partials) then skips the evidence on the ticks where no group alerts, instead of
    re-reading the window every tick. ``None`` for the others: their verdict reads more than one
    group of one answer (reference windows, history, a canary's baseline groups)."""
    window = own.window
    met: Callable[[Group], bool]
    if rule.detector == "threshold":
        met = lambda group: threshold.alerts(rule, group.key, group.values)  # noqa: E731
    elif rule.detector == "validity":
        from watcher.detect import validity  # on first use, as DETECTORS loads it: NumPy stays out

        met = lambda group: validity.alerts(rule, group.key, group.values, window)  # noqa: E731
    elif rule.drift is not None and rule.drift.reference is None:
        from watcher.detect import drift  # a daemon without drift rules never loads NumPy

        met = lambda group: drift.alerts(rule, group.key, group.values, window)  # noqa: E731
    else:
        return None
    return Condition(own.id, met)


def _measured_field(rule: Rule) -> str:
    """The field a percentile or stat signal measures: by default its largest values are the
    evidence (the slowest requests of a p99 latency alert); "" (the newest documents) otherwise."""
    measured = rule.signal.percentile or rule.signal.stat
    return measured.field if measured is not None else ""


def with_evidence(rule: Rule, findings: Sequence[Finding], answer: QueryResult | None) -> list[Finding]:
    """The findings, each alerting one with its group's documents (redacted, cut). A failed or
    missing answer leaves them without: evidence never fails an evaluation."""
    if answer is None or not answer.ok or not any(f.status is Status.ALERTING for f in findings):
        return list(findings)  # most evaluations: no group alerts, no documents to look up
    documents = {group_key(group.key): group.values.get(EVIDENCE) for group in answer.groups}
    redact = rule.evidence.redact or ()
    out = []
    for finding in findings:
        found = documents.get(group_key(finding.group)) if finding.status is Status.ALERTING else None
        if isinstance(found, Documents):
            finding = finding.evolve(evidence=cleaned(found.documents, redact))
        out.append(finding)
    return out

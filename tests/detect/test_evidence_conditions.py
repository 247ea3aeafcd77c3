"""An alert's evidence is asked only when a group alerts (``Query.only_if``): for threshold,
validity and drift-against-a-profile rules the condition is the detector's own verdict on the
group, so the store skips the documents exactly when no finding would carry them. Rules judged
on more than their own answer (drift with reference windows) carry no condition: asked as before."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.detect import test_drift, test_validity
from watcher.detect import DETECTORS, drift, validity
from watcher.detect.base import Status
from watcher.detect.evidence import evidence_query
from watcher.query import Group, QueryResult
from watcher.rules.models import Rule

AT = test_validity.AT
UNSEEN = {test_validity.COUNTRY_UNSEEN: 150, test_validity.COUNTRY_TERMS: {"DE": 500, "FR": 350, "XX": 150}}


def verdicts(rule: Rule, *values: dict[str, Any]) -> list[tuple[bool, bool]]:
    """Per group: whether the evidence's condition holds, whether the detector alerts."""
    queries = DETECTORS[rule.detector].queries(rule, AT)
    evidence = evidence_query(rule, queries, AT)
    assert evidence is not None
    assert evidence.only_if is not None
    assert evidence.only_if.query == queries[0].id
    groups = [Group({"n": str(i)}, group) for i, group in enumerate(values)]
    findings = DETECTORS[rule.detector].evaluate(rule, [QueryResult(queries[0].id, tuple(groups))], AT)
    return [
        (evidence.only_if.met(group), finding.status is Status.ALERTING)
        for group, finding in zip(groups, findings, strict=True)
    ]


@pytest.mark.parametrize(
    ("rule", "values"),
    [
        (test_validity.make_rule(), [test_validity.group(), test_validity.group(changes=UNSEEN)]),
        (test_drift.make_rule(), [test_drift.STABLE, test_drift.DRIFTED]),
    ],
    ids=["validity", "drift"],
)
def test_the_condition_is_the_detectors_verdict(rule: Rule, values: list[dict[str, Any]]) -> None:
    assert verdicts(rule, *values) == [(False, False), (True, True)]


def test_drift_against_reference_windows_has_no_condition() -> None:
    rule = test_drift.make_rule(reference={"offset": "7d"})
    evidence = evidence_query(rule, DETECTORS["drift"].queries(rule, AT), AT)
    assert evidence is not None
    assert evidence.only_if is None


@pytest.mark.parametrize(
    ("module", "rule", "values"),
    [
        (validity, test_validity.make_rule(), [test_validity.group(), test_validity.group(changes=UNSEEN)]),
        (drift, test_drift.make_rule(), [test_drift.STABLE, test_drift.DRIFTED]),
    ],
    ids=["validity", "drift"],
)
def test_a_group_judged_for_its_evidence_is_not_judged_again(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, rule: Rule, values: list[dict[str, Any]]
) -> None:
    """Per-bucket partials judge every group for the condition, then the detector evaluates the
    same answer: the second verdict is the first, not a second pass over bins and scores."""
    judged: list[object] = []
    judge = module._judge
    monkeypatch.setattr(module, "_judge", lambda *args: judged.append(args) or judge(*args))
    queries = DETECTORS[rule.detector].queries(rule, AT)
    evidence = evidence_query(rule, queries, AT)
    assert evidence is not None
    assert evidence.only_if is not None
    answer = QueryResult(queries[0].id, tuple(Group({"n": str(i)}, v) for i, v in enumerate(values)))
    assert [evidence.only_if.met(group) for group in answer.groups] == [False, True]
    findings = DETECTORS[rule.detector].evaluate(rule, [answer], AT)
    assert len(judged) == len(values)
    fresh = QueryResult(queries[0].id, tuple(Group(dict(g.key), dict(g.values)) for g in answer.groups))
    assert findings == DETECTORS[rule.detector].evaluate(rule, [fresh], AT)
    assert len(judged) == 2 * len(values)  # another answer (the next tick's) is judged afresh


def test_an_edited_rule_is_judged_afresh_on_the_same_answer() -> None:
    loaded, edited = test_drift.make_rule(), test_drift.make_rule(min_samples=100_000)
    queries = DETECTORS["drift"].queries(loaded, AT)
    evidence = evidence_query(loaded, queries, AT)
    assert evidence is not None
    assert evidence.only_if is not None
    answer = QueryResult(queries[0].id, (Group({}, test_drift.DRIFTED),))
    assert evidence.only_if.met(answer.groups[0])
    (finding,) = DETECTORS["drift"].evaluate(edited, [answer], AT)
    assert finding.status is Status.NO_DATA

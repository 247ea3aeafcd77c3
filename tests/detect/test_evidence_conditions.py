"""An alert's evidence is asked only when a group alerts (``Query.only_if``): for threshold,
validity and drift-against-a-profile rules the condition is the detector's own verdict on the
group, so the store skips the documents exactly when no finding would carry them. Rules judged
on more than their own answer (drift with reference windows) carry no condition: asked as before."""

from __future__ import annotations

from typing import Any

import pytest

from tests.detect import test_drift, test_validity
from watcher.detect import DETECTORS
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

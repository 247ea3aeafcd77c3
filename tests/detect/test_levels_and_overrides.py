"""Severity levels and per-group overrides, as the detectors judge them (pure, no store)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from watcher.detect import flatline, threshold
from watcher.detect.base import Finding, Status
from watcher.query import Group, QueryResult
from watcher.rules.models import Rule

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"name": "r", "source": "s", "signal": {"ratio": {"of": {"status": 429}}}}
    return Rule.model_validate(base | fields)


def judged(rule: Rule, *groups: tuple[dict[str, str], int, int]) -> dict[str, Finding]:
    """Findings by the group's first value, for groups given as (key, documents, matching)."""
    result = QueryResult("r#main", tuple(Group(key, {"count": n, "value": hit}) for key, n, hit in groups))
    detector = flatline if rule.flatline is not None else threshold
    return {next(iter(f.group.values()), ""): f for f in detector.evaluate(rule, [result], AT)}


@pytest.mark.parametrize(
    ("matching", "status", "severity", "bound"),
    [
        (10, Status.OK, None, 0.02),
        (30, Status.ALERTING, "warning", 0.02),
        (80, Status.ALERTING, "critical", 0.05),
    ],
)
def test_threshold_levels_set_the_findings_severity(
    matching: int, status: Status, severity: str | None, bound: float
) -> None:
    rule = make_rule(threshold={"above": {"warning": 0.02, "critical": 0.05}})

    finding = judged(rule, ({}, 1000, matching))[""]

    assert (finding.status, finding.severity, finding.threshold) == (status, severity, bound)


def test_a_level_reason_names_the_level_crossed() -> None:
    rule = make_rule(threshold={"above": {"warning": 0.02, "critical": 0.05}})
    assert judged(rule, ({}, 1000, 80))[""].reason == "ratio 0.08 > 0.05 (critical)"


def test_levels_below_alert_more_severely_the_lower_the_value() -> None:
    rule = make_rule(signal="count", threshold={"below": {"warning": 100, "critical": 10}})
    findings = judged(rule, ({}, 50, 0))
    assert (findings[""].severity, findings[""].threshold) == ("warning", 100)
    assert judged(rule, ({}, 5, 0))[""].severity == "critical"


def test_a_plain_threshold_alerts_at_the_rules_severity() -> None:
    rule = make_rule(threshold={"above": 0.05}, severity="error")
    finding = judged(rule, ({}, 1000, 80))[""]
    assert (finding.severity, finding.reason) == ("error", "ratio 0.08 > 0.05")


def test_a_per_tenant_override_fires_for_the_small_tenant_only() -> None:
    rule = make_rule(
        group_by=["tenant"],
        threshold={"above": 0.5},
        overrides=[{"group": {"tenant": "big"}, "threshold": {"above": 0.9}}],
    )

    findings = judged(rule, ({"tenant": "big"}, 1000, 700), ({"tenant": "small"}, 1000, 700))

    assert findings["small"].status is Status.ALERTING
    assert findings["big"].status is Status.OK
    assert (findings["big"].threshold, findings["big"].details["override"]) == (0.9, {"tenant": "big"})
    assert "override" not in findings["small"].details


def test_an_override_naming_some_group_fields_applies_to_every_group_with_them() -> None:
    rule = make_rule(
        group_by=["tenant", "model"],
        threshold={"above": 0.5},
        overrides=[
            {"group": {"tenant": "a", "model": "v1"}, "threshold": {"above": 0.99}},
            {"group": {"tenant": "a"}, "threshold": {"above": 0.9}},
        ],
    )
    assert rule.threshold_for({"tenant": "a", "model": "v1"}).above == 0.99  # the first that matches
    assert rule.threshold_for({"tenant": "a", "model": "v2"}).above == 0.9
    assert rule.threshold_for({"tenant": "b", "model": "v1"}).above == 0.5


def test_an_override_can_give_levels() -> None:
    rule = make_rule(
        group_by=["tenant"],
        threshold={"above": 0.05},
        overrides=[{"group": {"tenant": "a"}, "threshold": {"above": {"warning": 0.5, "critical": 0.8}}}],
    )
    findings = judged(rule, ({"tenant": "a"}, 1000, 900), ({"tenant": "b"}, 1000, 900))
    assert (findings["a"].severity, findings["b"].severity) == ("critical", "warning")


def test_a_flatline_override_gives_a_quiet_group_a_lower_floor() -> None:
    rule = make_rule(
        signal="count",
        group_by=["tenant"],
        flatline={"below": 100},
        overrides=[{"group": {"tenant": "tiny"}, "flatline": {"below": 5}}],
    )

    findings = judged(rule, ({"tenant": "tiny"}, 20, 0), ({"tenant": "big"}, 20, 0))

    assert (findings["tiny"].status, findings["big"].status) == (Status.OK, Status.ALERTING)

"""``validity``: are the feature values in the window the kind the model was trained on?

Three checks per feature, all counted exactly in the store (see ``ValiditySpec``):

- unseen: present values of a categorical feature outside the profile's value set, counted with
  ``CountWhere(exists and not in known)`` -- not folded into a drift score; a ``Terms`` sized
  known + ``top_values`` names the most frequent of them;
- missing: absent or null values, against the profile's missing rate plus a margin;
- out of range: present numeric values outside the rule's ``bounds`` or the profile's p0.1..p99.9.

One finding per group; ``value`` is the share of the check nearest to (or furthest over) its
limit and ``threshold`` that limit; ``details["checks"]`` lists every check. A limit written as
levels (``{warning: 0.01, critical: 0.05}``) makes the finding's severity the most severe level a
check crosses; a plain share alerts at the rule's ``severity``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from watcher.baseline import CategoricalFeature, NumericFeature
from watcher.baseline_slots import expected_missing_rate
from watcher.detect.base import Finding, Status, rule_window
from watcher.detect.derived import derived
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.signal import too_few
from watcher.detect.verdicts import Verdicts
from watcher.query import Aggregate, AggValue, Count, CountWhere, Missing, Query, QueryResult, Terms, Window
from watcher.query_filters import And, Exists, Filter, In, Not, Or, Range
from watcher.rules.ml_specs import ValidityCheck, ValiditySpec
from watcher.rules.models import Rule
from watcher.rules.thresholds import Severity, severity_rank

COUNT = "count"
Values = Mapping[str, AggValue]
_VERDICTS = Verdicts()


def _spec(rule: Rule) -> ValiditySpec:
    assert rule.validity is not None, "validity detector on a rule without 'validity'"
    return rule.validity


@dataclass(frozen=True)
class Plan:
    """What is checked for one feature: its known values (categorical) and valid range (numeric)."""

    name: str
    missing_rate: float
    known: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None

    @property
    def ranged(self) -> bool:
        return self.low is not None or self.high is not None

    @cached_property
    def known_set(self) -> frozenset[str]:
        """The known values, looked up for every value of every window's terms."""
        return frozenset(self.known or ())


def plans(spec: ValiditySpec, window: Window | None = None) -> Sequence[Plan]:
    """One plan per checked feature, from the profile and the rule's explicit bounds. A seasonal
    profile's missing rate is that of ``window``'s slots; the known values and the range stay
    the whole range's (what the model was trained on, at any hour)."""
    whole = _whole_range_plans(spec)
    profile = spec.baseline.profile if spec.baseline is not None else None
    if profile is None or not profile.slots or not profile.by or window is None:
        return whole
    return [
        replace(plan, missing_rate=expected_missing_rate(profile.slots, plan.name, window, profile.by))
        if plan.name in profile.features
        else plan
        for plan in whole
    ]


@derived
def _whole_range_plans(spec: ValiditySpec) -> tuple[Plan, ...]:
    profile = spec.baseline.profile if spec.baseline is not None else None
    out = []
    for name in spec.checked_features():
        stored = profile.features.get(name) if profile is not None else None
        rate = stored.missing_rate if stored is not None else 0.0
        bounds = spec.bounds.get(name)
        if bounds is not None:
            out.append(Plan(name, rate, low=bounds.min, high=bounds.max))
        elif isinstance(stored, NumericFeature):
            out.append(Plan(name, rate, low=stored.p0_1, high=stored.p99_9))
        elif isinstance(stored, CategoricalFeature):
            out.append(Plan(name, rate, known=stored.values))
        else:
            out.append(Plan(name, rate))
    return tuple(out)


def queries(rule: Rule, at: datetime) -> list[Query]:
    aggregates = _aggregates(_spec(rule))
    window = rule_window(rule, at)
    return [Query(f"{rule.name}#current", window, aggregates, where=rule.where, group_by=rule.group_by)]


@derived
def _aggregates(spec: ValiditySpec) -> Mapping[str, Aggregate]:
    """What the store counts per window; the rule's alone, so built once."""
    aggregates: dict[str, Aggregate] = {COUNT: Count()}
    for plan in plans(spec):
        aggregates[f"{plan.name}/missing"] = Missing(plan.name)
        if plan.known is not None and spec.unseen_share_above is not None:
            aggregates[f"{plan.name}/unseen"] = CountWhere(unseen_filter(plan.name, plan.known))
            if spec.top_values:
                aggregates[f"{plan.name}/terms"] = Terms(plan.name, size=len(plan.known) + spec.top_values)
        if plan.ranged and spec.out_of_range_share_above is not None:
            aggregates[f"{plan.name}/out_of_range"] = CountWhere(out_of_range_filter(plan))
    return aggregates


def unseen_filter(name: str, known: Sequence[str]) -> Filter:
    """Present and not one of the known values (a ``must_not terms`` in the search DSL)."""
    return And((Exists(name), Not(In(name, tuple(known)))))


def out_of_range_filter(plan: Plan) -> Filter:
    """Below ``low`` or above ``high`` (the bounds themselves are valid)."""
    sides: list[Filter] = []
    if plan.low is not None:
        sides.append(Range(plan.name, lt=plan.low))
    if plan.high is not None:
        sides.append(Range(plan.name, gt=plan.high))
    return sides[0] if len(sides) == 1 else Or(tuple(sides))


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = _spec(rule)
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    window = rule_window(rule, at)
    checked = plans(spec, window)
    return [
        _VERDICTS.take(rule, group, values, window) or _judge(rule, spec, checked, group, values)
        for group, values in groups_with_known(result, known_groups)
    ]


def alerts(rule: Rule, group: Mapping[str, str], values: Values, window: Window) -> bool:
    """Whether ``evaluate`` finds this group of the answer alerting: the condition on which the
    store is asked for the alert's evidence (``watcher.detect.evidence``). The finding is kept for
    ``evaluate``, which then judges the group no more (``watcher.detect.verdicts``)."""
    spec = _spec(rule)
    finding = _judge(rule, spec, plans(spec, window), group, values)
    return _VERDICTS.keep(rule, group, values, window, finding).status is Status.ALERTING


def _int(values: Values, key: str) -> int:
    value = values.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def _judge(
    rule: Rule, spec: ValiditySpec, checked: Sequence[Plan], group: Mapping[str, str], values: Values
) -> Finding:
    count = _int(values, COUNT)
    if (short := too_few(count, min_samples=spec.min_samples, min_events=rule.min_events)) is not None:
        return Finding(rule.name, group, Status.NO_DATA, reason=short)
    checks = [check for plan in checked for check in _checks(rule, spec, plan, values, count)]
    if not checks:
        return Finding(rule.name, group, Status.NO_DATA, reason="no feature had values to check")
    violations = [check for check in checks if check["alerting"]]
    worst = max(violations or checks, key=lambda check: check["share"] - check["limit"])
    details = {"documents": count, "checks": checks, "violations": [_label(c) for c in violations]}
    if not violations:
        reason = f"{len(checks)} check{'s' if len(checks) > 1 else ''} within limits"
        return Finding(rule.name, group, Status.OK, worst["share"], worst["limit"], reason, details)
    reason = "; ".join(_describe(check) for check in violations)
    severity = max((check["level"] for check in violations), key=severity_rank)
    details["severity"] = severity
    return Finding(
        rule.name, group, Status.ALERTING, worst["share"], worst["limit"], reason, details, severity=severity
    )


def _checks(rule: Rule, spec: ValiditySpec, plan: Plan, values: Values, count: int) -> list[dict[str, Any]]:
    missing = _int(values, f"{plan.name}/missing")
    present = count - missing
    checks = []
    limits = _limits(rule)

    def check(kind: ValidityCheck, hits: int, total: int, base: float = 0.0) -> dict[str, Any]:
        levels = [(level, base + share) for level, share in limits[kind]]
        checks.append(_check(plan.name, kind, hits, total, levels))
        return checks[-1]

    if "missing" in limits:
        check("missing", missing, count, plan.missing_rate)
    if present > 0 and f"{plan.name}/unseen" in values and "unseen" in limits:
        unseen = check("unseen", _int(values, f"{plan.name}/unseen"), present)
        unseen["values"] = _unseen_values(values, plan, spec.top_values)
    if present > 0 and f"{plan.name}/out_of_range" in values and "out_of_range" in limits:
        outside = check("out_of_range", _int(values, f"{plan.name}/out_of_range"), present)
        outside["range"] = [plan.low, plan.high]
    return checks


@derived
def _limits(rule: Rule) -> dict[ValidityCheck, list[tuple[Severity, float]]]:
    """The checks the rule makes, each with its levels (most severe first), once per rule object,
    not read again from the spec for every check of every group at every evaluation."""
    spec = _spec(rule)
    kinds: tuple[ValidityCheck, ...] = ("missing", "unseen", "out_of_range")
    return {kind: levels for kind in kinds if (levels := spec.levels(kind, rule.severity))}


def _check(
    feature: str, kind: str, hits: int, total: int, levels: Sequence[tuple[Severity, float]]
) -> dict[str, Any]:
    """One check; ``levels`` most severe first. ``limit`` is where it starts alerting, ``level``
    the most severe level its share is over (None within limits)."""
    share = hits / total
    level = next(((name, limit) for name, limit in levels if share > limit), None)
    check = {
        "feature": feature,
        "check": kind,
        "count": hits,
        "of": total,
        "share": share,
        "limit": levels[-1][1],
        "alerting": level is not None,
        "level": level[0] if level is not None else None,
    }
    if len(levels) > 1:
        check["levels"] = dict(levels)
    return check


def _unseen_values(values: Values, plan: Plan, top: int) -> dict[str, int]:
    terms = values.get(f"{plan.name}/terms")
    if not isinstance(terms, dict) or plan.known is None:
        return {}
    known = plan.known_set
    unseen = [
        (str(v), int(c)) for v, c in terms.items() if str(v) not in known and isinstance(c, int | float)
    ]
    return dict(sorted(unseen, key=lambda item: (-item[1], item[0]))[:top])


def _label(check: Mapping[str, Any]) -> str:
    return f"{check['feature']}:{check['check']}"


def _describe(check: Mapping[str, Any]) -> str:
    what = {"missing": "missing", "unseen": "unseen values", "out_of_range": "out of range"}[check["check"]]
    if "levels" in check:
        limit = f"{check['level']}: over {check['levels'][check['level']]:.1%}"
    else:
        limit = f"limit {check['limit']:.1%}"
    text = f"{check['feature']}: {check['share']:.1%} {what} ({limit})"
    if check.get("values"):
        text += ": " + ", ".join(check["values"])
    if check["check"] == "out_of_range":
        low, high = check["range"]
        text += (
            f" outside [{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        )
    return text

"""A failed rule test as a readable diff: one line per event, in time order::

FAIL rules-tests/5xx.yaml:12: a 5xx burst on v3 fires, then resolves
  incidents (-: expected, did not happen; +: happened, not expected):
      08:14  firing    prediction-5xx-rate {model_version=v3}
    - 08:20  resolved  prediction-5xx-rate {model_version=v3}
    + 08:21  resolved  prediction-5xx-rate {model_version=v3}  value=0.0213
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path

from watcher.rule_tests.run import Group, Happening, Outcome

LEGEND = "(-: expected, did not happen; +: happened, not expected)"


def failure(path: Path, outcome: Outcome, day: date) -> list[str]:
    """The lines telling how ``outcome`` differs from what its test expected."""
    lines = [f"FAIL {path}:{outcome.line}: {outcome.name}"]
    if Counter(outcome.expected) != Counter(outcome.got):
        lines.append(f"  incidents {LEGEND}:")
        lines += _diff(outcome.expected, outcome.got, day, outcome.values)
    wanted = outcome.expected_notifications
    if wanted is not None and Counter(wanted) != Counter(outcome.notifications):
        lines.append(f"  notifications {LEGEND}:")
        lines += _diff(wanted, outcome.notifications, day, {})
    return lines


def _diff(
    expected: list[Happening], got: list[Happening], day: date, values: dict[Happening, float | None]
) -> list[str]:
    missing = Counter(expected) - Counter(got)
    extra = Counter(got) - Counter(expected)
    both = Counter(expected) & Counter(got)
    rows = [(h, "-") for h in missing.elements()] + [(h, "+") for h in extra.elements()]
    rows += [(h, " ") for h in both.elements()]
    rows.sort(key=lambda row: (row[0], row[1]))
    if not rows:
        return ["      (none)"]
    return [f"    {mark} {line(h, day)}{_value(values, h) if mark == '+' else ''}" for h, mark in rows]


def line(happening: Happening, day: date) -> str:
    receiver = f"{happening.receiver}: " if happening.receiver else ""
    incidents = ", ".join(rule + _labels(group) for rule, group in happening.incidents)
    return f"{clock(happening.at, day)}  {happening.event:<8}  {receiver}{incidents}"


def _labels(group: Group) -> str:
    return " {" + ",".join(f"{name}={value}" for name, value in group) + "}" if group else ""


def _value(values: dict[Happening, float | None], happening: Happening) -> str:
    value = values.get(happening)
    return "" if value is None else f"  value={value:.4g}"


def clock(at: datetime, day: date) -> str:
    """``08:14`` on the test file's day, ``08:14:30`` off the minute, the full time on another day."""
    if at.date() != day:
        return at.isoformat().replace("+00:00", "Z")
    return at.strftime("%H:%M" if at.second == 0 else "%H:%M:%S")

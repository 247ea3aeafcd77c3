"""Running one rule test through the replay ``backtest`` uses, and comparing what came out.

The rules see the test's logs through ``watcher.replay.Replay``: a fresh embedded store and state
file, the daemon's ``Engine`` and ``Dispatcher`` on a simulated clock. Every incident event of
every tick is compared with ``expect`` (anything not listed is a failure: "nothing else fired"),
and, when the test lists ``notifications``, every notification the route tree made with them.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from watcher.notify.base import Notification
from watcher.replay import Replay
from watcher.rule_tests.inputs import time_fields, write_inputs
from watcher.rule_tests.model import Expected, ExpectedNotification, on
from watcher.rule_tests.reading import Suite
from watcher.tick_report import Transition

Group = tuple[tuple[str, str], ...]


def _group(labels: Mapping[str, str]) -> Group:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


@dataclass(frozen=True, order=True)
class Happening:
    """An incident event (or a notification, with ``receiver`` and every incident it names)."""

    at: datetime
    event: str
    incidents: tuple[tuple[str, Group], ...]
    receiver: str = ""


@dataclass
class Outcome:
    """What one test expected and what the replay did."""

    name: str
    line: int
    expected: list[Happening] = field(default_factory=list)
    got: list[Happening] = field(default_factory=list)
    values: dict[Happening, float | None] = field(default_factory=dict)
    expected_notifications: list[Happening] | None = None
    notifications: list[Happening] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        if Counter(self.expected) != Counter(self.got):
            return False
        wanted = self.expected_notifications
        return wanted is None or Counter(wanted) == Counter(self.notifications)


def run_test(suite: Suite, index: int) -> Outcome:
    test = suite.spec.tests[index]
    day = suite.spec.day
    outcome = Outcome(test.name, suite.line_of(index))
    outcome.expected = [_expected(e, suite) for e in test.expect]
    if test.notifications is not None:
        outcome.expected_notifications = [_expected_notification(n, suite) for n in test.notifications]
    clocks = time_fields(suite.config, suite.rules)
    with tempfile.TemporaryDirectory(prefix="watcher-test-rules-") as folder:
        workdir = Path(folder)
        logs = write_inputs(test, day, suite.path.parent, workdir, clocks)
        replay = Replay(suite.config, suite.rules, logs, workdir / "replay")
        try:
            for tick in replay.ticks(on(day, test.evaluate.from_), on(day, test.evaluate.to)):
                for transition in tick.report.transitions:
                    happening = _happened(transition)
                    outcome.got.append(happening)
                    outcome.values[happening] = transition.incident.value
                outcome.notifications += [_notified(n) for n in tick.report.notifications]
        finally:
            replay.close()
    return outcome


def _expected(expected: Expected, suite: Suite) -> Happening:
    at = on(suite.spec.day, expected.at)
    return Happening(at, expected.event, ((expected.rule, _group(expected.group)),))


def _expected_notification(expected: ExpectedNotification, suite: Suite) -> Happening:
    incidents = tuple(sorted((ref.rule, _group(ref.group)) for ref in expected.incidents))
    return Happening(on(suite.spec.day, expected.at), expected.event, incidents, expected.receiver)


def _happened(transition: Transition) -> Happening:
    incident = transition.incident
    return Happening(transition.at, transition.event.value, ((incident.rule, _group(incident.group)),))


def _notified(notification: Notification) -> Happening:
    incidents = tuple(sorted((i.rule, _group(i.group)) for i in notification.incidents))
    return Happening(notification.created_at, notification.event.value, incidents, notification.receiver)

"""What a tick reports (``watcher.engine.Engine.tick``): its evaluations, the incidents' transitions,
the notifications it enqueued, the store errors and round trips. Read by the daemon's metrics and
watchdog, the backtest and its summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from watcher.detect.base import Finding
from watcher.incidents.model import Event, Incident
from watcher.notify.base import Notification


@dataclass(frozen=True)
class Transition:
    """An incident event produced by a tick (what ``backtest`` prints)."""

    incident: Incident
    event: Event
    at: datetime


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a rule in a tick (what ``/metrics`` times and counts per rule).

    ``seconds`` is the rule's share of its source's batched store round trip (the batch's wall
    time times the rule's share of its queries) plus its own detection time; ``error`` when the
    store did not answer or the detector could not judge a group; ``findings`` what it concluded
    per group (the backtest's summary counts the evaluations that had not enough data).
    """

    rule: str
    at: datetime
    seconds: float
    error: bool
    findings: tuple[Finding, ...] = ()


@dataclass
class TickReport:
    evaluations: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # rule -> store error
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    round_trips: dict[str, int] = field(default_factory=dict)  # source -> store calls
    evaluated: list[Evaluation] = field(default_factory=list)  # one per evaluation, in plan order
    # The open incidents as the tick left them, by fingerprint (None: a tick that read none): the
    # daemon's gauges count them without reading them again.
    open: dict[str, Incident] | None = None

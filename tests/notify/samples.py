"""Sample incidents and notifications shared by the notifier tests (email, SMS, webhook, secrets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.incidents.model import Event, Incident, State
from watcher.notify.base import Notification
from watcher.rules.evidence import DEFAULT_REDACT, cleaned
from watcher.rules.models import Rule

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RULE = Rule.model_validate(
    {
        "name": "prediction-5xx",
        "source": "ml-api",
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
        "threshold": {"above": 0.05},
        "severity": "critical",
    }
)
SUMMARY = "5xx rate {{ value | percent }} for model {{ group.model_version }}"


def series(minutes: int = 30) -> list[list[Any]]:
    """A JSON-ready series (as the state machine records it) that crosses the 5% threshold."""
    return [
        [(NOW - timedelta(minutes=minutes - i)).isoformat(), 0.02 if i < minutes - 14 else 0.0712]
        for i in range(minutes)
    ]


SECRET_TOKEN = "eyJhbGciOi-secret-token"
LONG_ERROR = "upstream timed out " * 40
# What a firing 5xx incident keeps (redacted and cut as the engine stores it): log data that would
# ping a channel, run a script, close a code block, or carry a credential.
EVIDENCE = cleaned(
    [
        {"status": 503, "route": "/predict <!channel>", "error.message": LONG_ERROR,
         "authorization": f"Bearer {SECRET_TOKEN}", "trace_id": "```<script>alert(1)</script>*x*"},
        {"status": 502, "route": "/predict", "error.message": f"retry with Bearer {SECRET_TOKEN}"},
    ],
    DEFAULT_REDACT,
)  # fmt: skip


def incident(**changes: Any) -> Incident:
    base = Incident(
        fingerprint="f1",
        rule="prediction-5xx",
        group={"model_version": "v2"},
        labels={"team": "ml"},
        annotations={"summary": SUMMARY, "runbook": "https://runbooks.example.com/5xx"},
        severity="critical",
        state=State.FIRING,
        value=0.0712,
        threshold=0.05,
        started_at=NOW - timedelta(minutes=14),
        fired_at=NOW - timedelta(minutes=12),
        details={"series": series()},
    )
    return base.evolve(**changes)


def resolved(**changes: Any) -> Incident:
    return incident(state=State.RESOLVED, resolved_at=NOW - timedelta(minutes=2), value=0.01, **changes)


def notification(
    event: Event = Event.FIRING, *incidents: Incident, id: str = "n1", receiver: str = "oncall"
) -> Notification:
    return Notification(
        id=id,
        receiver=receiver,
        event=event,
        incidents=incidents or (incident(),),
        created_at=NOW,
        thread_key="f1|2024-05-01T11:46:00+00:00",
        group_labels={"model_version": "v2"},
    )

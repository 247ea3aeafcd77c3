"""Flapping: a signal that keeps changing between alerting and ok (Kibana's numbers by default:
4 status changes in the last 20 evaluations).

An incident remembers when its evaluations changed status (``Incident.flips``, only those within
the last ``window`` evaluations). It starts flapping when they reach ``changes``; it settles, with
hysteresis, when fewer than half as many remain (at most one of Kibana's 4), i.e. once the signal
held one status for most of the window. Pure: the state machine calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALERTING = "alerting"
OK = "ok"


class FlappingSpec(BaseModel):
    """``flapping: {window: 20, changes: 4}`` (a rule's, or watcher.yaml's default for all rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(default=20, ge=2, le=1000, description="evaluations looked back at")
    changes: int = Field(default=4, ge=2, description="status changes within them that start flapping")
    enabled: bool = Field(default=True, description="'flapping: false' turns it off")

    @model_validator(mode="before")
    @classmethod
    def _off(cls, data: Any) -> Any:
        return {"enabled": False} if data is False else data

    def lookback(self, every: timedelta) -> timedelta:
        return self.window * every

    @property
    def settle_below(self) -> int:
        """Flapping ends when fewer changes than this remain in the window."""
        return max(1, self.changes // 2)


DEFAULT_FLAPPING = FlappingSpec()


def recent_flips(
    flips: Sequence[datetime], before: str, after: str, spec: FlappingSpec, every: timedelta, now: datetime
) -> tuple[datetime, ...]:
    """``flips`` within the window at ``now``, plus ``now`` when the status changed from ``before``
    to ``after`` ('' before: the first evaluation, a change when it alerts)."""
    since = now - spec.lookback(every)
    kept = tuple(flip for flip in flips if flip > since)
    changed = after != (before or OK)
    return (*kept, now) if changed else kept

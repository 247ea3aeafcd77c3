"""A circuit breaker per receiver: stop hammering a service that is down or asks us to wait.

Closed, a receiver gets every due notification. ``Retry-After`` (429/503) opens it for exactly
that long: the service is alive and said when to come back. ``threshold`` other failures in a row
open it for ``cooldown``, doubled each time it opens again without a success in between (up to
``max_cooldown``). When the time is up, the next notification is the trial: a success closes the
breaker, a failure opens it again. While open,
the outbox leaves the receiver's notifications pending without an attempt, so a long outage or
rate limit costs no retries and dead-letters nothing by attempt count (``max_age`` still applies).

State is in memory: a restarted daemon starts closed and learns again from the first failure.
The thresholds come from ``delivery.breaker`` in watcher.yaml; a reload changes them, never the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.notify.base import Delivery

if TYPE_CHECKING:
    from watcher.config import BreakerConfig


@dataclass
class _Circuit:
    failures: int = 0  # in a row
    trips: int = 0  # openings in a row without a success
    open_until: datetime | None = None


class CircuitBreaker:
    """One circuit per receiver name."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: timedelta = timedelta(seconds=5),
        max_cooldown: timedelta = timedelta(minutes=5),
    ) -> None:
        self._circuits: dict[str, _Circuit] = {}
        self._set(threshold, cooldown, max_cooldown)

    @classmethod
    def from_config(cls, breaker: BreakerConfig) -> CircuitBreaker:
        """The breaker ``delivery.breaker`` of watcher.yaml describes (same names)."""
        return cls(breaker.threshold, breaker.cooldown, breaker.max_cooldown)

    def configure(self, breaker: BreakerConfig) -> None:
        """Take reloaded settings. Every circuit keeps its state: an open one stays open until its
        time is up, and failures already counted count towards the new threshold."""
        self._set(breaker.threshold, breaker.cooldown, breaker.max_cooldown)

    def _set(self, threshold: int, cooldown: timedelta, max_cooldown: timedelta) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        if cooldown <= timedelta(0) or max_cooldown < cooldown:
            raise ValueError("circuit breaker needs 0 < cooldown <= max_cooldown")
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown

    def allows(self, receiver: str, now: datetime) -> bool:
        """Whether ``receiver`` may be tried now (closed, or open but its time is up)."""
        circuit = self._circuits.get(receiver)
        return circuit is None or circuit.open_until is None or now >= circuit.open_until

    def open_until(self, receiver: str) -> datetime | None:
        circuit = self._circuits.get(receiver)
        return None if circuit is None else circuit.open_until

    def record(self, receiver: str, delivery: Delivery, now: datetime) -> None:
        """Learn from one attempt's outcome."""
        if delivery.ok:
            self._circuits.pop(receiver, None)
            return
        circuit = self._circuits.setdefault(receiver, _Circuit())
        if delivery.retry_after is not None:
            circuit.open_until = now + timedelta(seconds=delivery.retry_after)
            return
        circuit.failures += 1
        if circuit.failures >= self.threshold:
            backoff = self.cooldown * 2 ** min(circuit.trips, 16)
            circuit.open_until = now + min(backoff, self.max_cooldown)
            circuit.trips += 1

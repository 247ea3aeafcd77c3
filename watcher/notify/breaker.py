"""A circuit breaker per receiver: stop hammering a service that is down or asks us to wait.

Closed, a receiver gets every due notification. ``Retry-After`` (429/503) opens it for exactly
that long: the service is alive and said when to come back. ``threshold`` other failures in a row
open it for ``cooldown``, doubled each time it opens again without a success in between (up to
``max_cooldown``). When the time is up, the next notification is the trial: a success closes the
breaker, a failure opens it again. While open,
the outbox leaves the receiver's notifications pending without an attempt, so a long outage or
rate limit costs no retries and dead-letters nothing by attempt count (``max_age`` still applies).

State is in memory: a restarted daemon starts closed and learns again from the first failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.notify.base import Delivery


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
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        if cooldown <= timedelta(0) or max_cooldown < cooldown:
            raise ValueError("circuit breaker needs 0 < cooldown <= max_cooldown")
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._circuits: dict[str, _Circuit] = {}

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

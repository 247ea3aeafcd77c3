"""A circuit breaker per receiver: stop hammering a service that is down or asks us to wait.

Closed, a receiver gets every due notification. ``Retry-After`` (429/503) opens it for exactly
that long: the service is alive and said when to come back. ``threshold`` other failures in a row
open it for ``cooldown``. When the time is up the circuit is half-open: exactly one notification is
let through as a probe. A success closes the circuit (and the outbox sends the receiver's queue at
once, in order); a failure opens it for another ``cooldown`` -- the same length every time, so a
service that comes back is found within one cooldown however long it was down (a cooldown that
doubled per opening left messages waiting minutes after the service was fine again).

While open, the outbox leaves the receiver's notifications pending without an attempt, so a long
outage or rate limit costs no retries and dead-letters nothing by attempt count (``max_age``
still applies). State is in memory, per process: a restarted daemon starts closed and learns again
from the first failure. The thresholds come from ``delivery.breaker`` in watcher.yaml; a reload
changes them, never the state. Thread-safe: each receiver's delivery worker records its own outcomes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.notify.base import Delivery

if TYPE_CHECKING:
    from watcher.config import BreakerConfig


@dataclass
class _Circuit:
    failures: int = 0  # in a row
    open_until: datetime | None = None
    probing: bool = False  # half-open: one probe is out, the others wait for its outcome


class CircuitBreaker:
    """One circuit per receiver name."""

    def __init__(self, threshold: int = 3, cooldown: timedelta = timedelta(seconds=5)) -> None:
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()
        self._set(threshold, cooldown)

    @classmethod
    def from_config(cls, breaker: BreakerConfig) -> CircuitBreaker:
        """The breaker ``delivery.breaker`` of watcher.yaml describes (same names)."""
        return cls(breaker.threshold, breaker.cooldown)

    def configure(self, breaker: BreakerConfig) -> None:
        """Take reloaded settings. Every circuit keeps its state: an open one stays open until its
        time is up, and failures already counted count towards the new threshold."""
        self._set(breaker.threshold, breaker.cooldown)

    def _set(self, threshold: int, cooldown: timedelta) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        if cooldown <= timedelta(0):
            raise ValueError("circuit breaker needs a cooldown longer than 0s")
        self.threshold = threshold
        self.cooldown = cooldown

    def allows(self, receiver: str, now: datetime) -> bool:
        """Whether ``receiver`` may be tried now: closed, or open with its time up and no probe out
        yet (the caller's attempt is then the probe, and must be ``record``ed)."""
        with self._lock:
            circuit = self._circuits.get(receiver)
            if circuit is None or circuit.open_until is None:
                return True
            if now < circuit.open_until or circuit.probing:
                return False
            circuit.probing = True
            return True

    def open_until(self, receiver: str) -> datetime | None:
        with self._lock:
            circuit = self._circuits.get(receiver)
            return None if circuit is None else circuit.open_until

    def record(self, receiver: str, delivery: Delivery, now: datetime) -> bool:
        """Learn from one attempt's outcome. True when this success ended a run of failures (the
        receiver recovered: its waiting notifications may all go now)."""
        with self._lock:
            if delivery.ok:
                return self._circuits.pop(receiver, None) is not None
            circuit = self._circuits.setdefault(receiver, _Circuit())
            circuit.probing = False
            if delivery.retry_after is not None:
                circuit.open_until = now + timedelta(seconds=delivery.retry_after)
                return False
            circuit.failures += 1
            if circuit.failures >= self.threshold or circuit.open_until is not None:
                circuit.open_until = now + self.cooldown
            return False

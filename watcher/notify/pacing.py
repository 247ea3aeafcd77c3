"""Pacing: send no faster than a service accepts, so a storm is delivered in order without 429s.

Slack accepts about one message per second per channel (short bursts are tolerated): an incident
storm sent as fast as the outbox can go is answered 429, and every 429 costs a Retry-After wait.
A token bucket per pace key (a Slack channel) holds each send until a token is there: ``rate``
tokens a second, at most ``burst`` saved up. The key is the channel, not the receiver, so two
receivers posting to one channel share its bucket. A key without a pace is never held.

Tokens are taken right before a send is claimed; a notification held by its pace waits in the
outbox without an attempt (like an open circuit), and its worker sleeps until the next token.
Thread-safe: delivery workers of several receivers may share a key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Pace:
    """At most ``rate`` sends a second on average, ``burst`` at once after a quiet spell."""

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"a pace needs a rate above 0 per second, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"a pace needs a burst of at least 1, got {self.burst}")


@dataclass
class _Bucket:
    pace: Pace
    tokens: float
    at: datetime


class Pacer:
    """Token buckets by pace key."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, pace: Pace, now: datetime) -> bool:
        """Spend a token of ``key`` if one is there (True: send now)."""
        with self._lock:
            bucket = self._refilled(key, pace, now)
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def ready_at(self, key: str, pace: Pace, now: datetime) -> datetime:
        """When ``key`` has a token again (``now`` if it has one)."""
        with self._lock:
            bucket = self._refilled(key, pace, now)
            missing = max(0.0, 1 - bucket.tokens)
            return now + timedelta(seconds=missing / pace.rate)

    def _refilled(self, key: str, pace: Pace, now: datetime) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.pace != pace:  # new, or its pace changed on a reload
            bucket = self._buckets[key] = _Bucket(pace, float(pace.burst), now)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        bucket.tokens = min(float(pace.burst), bucket.tokens + elapsed * pace.rate)
        bucket.at = now
        return bucket

"""The ``delivery:`` of ``watcher.yaml``: how hard the outbox retries and when a circuit opens.

Kept apart because ``watcher.notify.outbox`` and ``watcher.notify.breaker`` read only these
models, which mirror their ``RetryPolicy`` and ``CircuitBreaker`` (same names and defaults), and
because their cross-field checks (a base wait within the longest wait, ...) read best together.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from watcher.config.base import ConfigModel
from watcher.duration import Duration, PositiveDuration, format_duration


class RetryConfig(ConfigModel):
    """How hard the outbox tries one notification (``watcher.notify.outbox.RetryPolicy``, same
    names and defaults). The n-th failure waits ``min(max_backoff, base * factor**(n-1))``,
    shortened by up to ``jitter``; a service's Retry-After replaces that wait."""

    max_attempts: int = Field(default=10, ge=1, description="failed attempts before a dead letter")
    base: PositiveDuration = Field(
        default=timedelta(seconds=2), description="the wait after the first failure"
    )
    factor: float = Field(default=2.0, ge=1, description="each further failure multiplies the wait by this")
    max_backoff: PositiveDuration = Field(default=timedelta(minutes=10), description="the longest wait")
    jitter: float = Field(default=0.2, ge=0, lt=1, description="waits are shortened by up to this fraction")
    max_age: PositiveDuration = Field(
        default=timedelta(hours=24),
        description="a notification still unsent this long after it was written becomes a dead letter",
    )
    lease: PositiveDuration = Field(
        default=timedelta(minutes=2),
        description="how long a send may take before the notification is tried again (keep it longer than "
        "the receivers' timeouts)",
    )

    @model_validator(mode="after")
    def _base_within_max(self) -> RetryConfig:
        if self.base > self.max_backoff:
            raise ValueError(
                f"'base' ({format_duration(self.base)}) must not be longer than "
                f"'max_backoff' ({format_duration(self.max_backoff)})"
            )
        return self


class BreakerConfig(ConfigModel):
    """When a receiver's circuit opens (``watcher.notify.breaker.CircuitBreaker``, same names and
    defaults): after ``threshold`` failures in a row, for ``cooldown``; then one probe per
    ``cooldown`` until a success closes it. A Retry-After opens it for exactly that long."""

    threshold: int = Field(default=3, ge=1, description="failures in a row that open the circuit")
    cooldown: PositiveDuration = Field(
        default=timedelta(seconds=5),
        description="how long it stays open before one probe is sent (and again after each failed probe)",
    )


class DeliveryConfig(ConfigModel):
    """Retries, circuit breaking and the shutdown flush, for every receiver. A reload applies them
    to the next attempts; open circuits stay open."""

    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    flush_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="how long a stop keeps delivering (0s: not at all); with the in-flight tick and one "
        "send's timeout it must fit in systemd's TimeoutStopSec (45s in deploy/) and Kubernetes' "
        "terminationGracePeriodSeconds",
    )

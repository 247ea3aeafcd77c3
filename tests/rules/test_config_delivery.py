"""watcher.yaml ``delivery:``: retries, the circuit breaker and the shutdown flush, each mistake
reported at its position."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.config import BreakerConfig, DeliveryConfig, RetryConfig
from watcher.incidents.state import StateStore
from watcher.notify.breaker import CircuitBreaker
from watcher.notify.outbox import RetryPolicy
from watcher.rules.loader import ConfigError, load_config

SOURCES = "sources: {app: {store: embedded}}\n"


def write(tmp_path: Path, delivery: str) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text(SOURCES + "delivery:\n" + delivery)
    return path


def test_without_a_delivery_section_watcher_delivers_as_before(tmp_path: Path, state: StateStore) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(SOURCES)
    delivery = load_config(path).delivery
    assert delivery == DeliveryConfig()
    assert RetryPolicy.from_config(delivery.retry) == RetryPolicy()
    built, default = CircuitBreaker.from_config(delivery.breaker, state), CircuitBreaker(state)
    assert (built.threshold, built.cooldown) == (default.threshold, default.cooldown)
    assert delivery.flush_timeout == timedelta(seconds=10)


def test_every_setting_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  retry: {max_attempts: 4, base: 500ms, factor: 3, max_backoff: 1m, jitter: 0, max_age: 2h,\n"
        "          lease: 5m}\n"
        "  breaker: {threshold: 1, cooldown: 1m}\n"
        "  flush_timeout: 0s\n",
    )
    delivery = load_config(path).delivery
    assert RetryPolicy.from_config(delivery.retry) == RetryPolicy(
        max_attempts=4,
        base=timedelta(milliseconds=500),
        factor=3.0,
        max_backoff=timedelta(minutes=1),
        jitter=0.0,
        max_age=timedelta(hours=2),
        lease=timedelta(minutes=5),
    )
    assert delivery.breaker == BreakerConfig(threshold=1, cooldown=timedelta(minutes=1))
    assert delivery.flush_timeout == timedelta(0)


def test_a_partial_section_keeps_the_other_defaults(tmp_path: Path) -> None:
    delivery = load_config(write(tmp_path, "  retry:\n    max_attempts: 20\n")).delivery
    assert delivery.retry == RetryConfig(max_attempts=20)
    assert delivery.breaker == BreakerConfig()


MISTAKES = {
    "  retry: {max_attempts: 0}\n": "3:25: 'delivery.retry.max_attempts' must be >= 1, got 0",
    "  retry: {max_attempts: many}\n": "3:25: 'delivery.retry.max_attempts' must be an integer, got 'many'",
    "  retry: {base: 0s}\n": "3:17: 'base' must be longer than 0s",
    "  retry: {base: 20m, max_backoff: 1m}\n": "3:11: 'base' (20m) must not be longer than "
    "'max_backoff' (1m)",
    "  retry: {base: 20m}\n": "3:11: 'base' (20m) must not be longer than 'max_backoff' (10m)",
    "  retry:\n    max_backoff: 1s\n": "4:5: 'base' (2s) must not be longer than 'max_backoff' (1s)",
    "  retry: {max_backoff: 0s}\n": "3:24: 'max_backoff' must be longer than 0s",
    "  retry: {factor: 0.5}\n": "3:19: 'delivery.retry.factor' must be >= 1, got 0.5",
    "  retry: {jitter: 1}\n": "3:19: 'delivery.retry.jitter' must be < 1, got 1",
    "  retry: {jitter: -0.1}\n": "3:19: 'delivery.retry.jitter' must be >= 0, got -0.1",
    "  retry: {max_age: 0s}\n": "3:20: 'max_age' must be longer than 0s",
    "  retry: {lease: 0ms}\n": "3:18: 'lease' must be longer than 0s",
    "  retry: {lease: 2}\n": "3:18: invalid duration 2: add a unit, e.g. 2s or 2m",
    "  retry: {initial: 2s}\n": "3:11: unknown key 'initial'",
    "  breaker: {threshold: 0}\n": "3:24: 'delivery.breaker.threshold' must be >= 1, got 0",
    "  breaker: {cooldown: 0s}\n": "3:23: 'cooldown' must be longer than 0s",
    # The cooldown no longer grows: a probe goes out every cooldown, so there is no maximum to set.
    "  breaker: {max_cooldown: 5m}\n": "3:13: unknown key 'max_cooldown' (did you mean 'cooldown'?)",
    "  flush_timeout: soon\n": "3:18: invalid duration 'soon': use a number and a unit (ms, s, m, h, d, w), "
    "e.g. 30s, 5m, 1h30m",
    "  flush_timout: 1s\n": "3:3: unknown key 'flush_timout' (did you mean 'flush_timeout'?)",
}


@pytest.mark.parametrize(("delivery", "expected"), MISTAKES.items(), ids=list(MISTAKES))
def test_each_mistake_is_reported_at_its_position(tmp_path: Path, delivery: str, expected: str) -> None:
    path = write(tmp_path, delivery)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:{expected}"


def test_a_receiver_timeout_must_be_shorter_than_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    hook = (
        "receivers: {hook: {webhook: {url: 'https://example.invalid/x', timeout: 3m}}}\n"
        "route: {receiver: hook}\n"
    )
    path.write_text(SOURCES + hook)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:3:19: receiver 'hook': timeout 3m must be shorter than delivery.retry.lease (2m): "
        "a send still running when its lease ends would be sent again"
    )
    path.write_text(SOURCES + hook + "delivery: {retry: {lease: 5m}}\n")
    assert load_config(path).delivery.retry.lease == timedelta(minutes=5)

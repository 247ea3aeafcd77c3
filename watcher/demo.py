"""Synthetic ML prediction API traffic with injected incidents, for the demo and the tests.

The scenario is data (``SCENARIO``): tests and ``watcher demo`` both read it to know which
incidents must be found and when nothing may fire. Generation is deterministic for a seed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

DEMO_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
DEMO_LENGTH = timedelta(hours=7)
BASE_RATE = 5.0  # requests per second
COUNTRIES = ("DE", "FR", "US", "GB", "ES", "IT")
COUNTRY_SHARES = (0.30, 0.20, 0.20, 0.15, 0.10, 0.05)
PLANS = ("free", "pro", "enterprise")
PLAN_SHARES = (0.6, 0.3, 0.1)


@dataclass(frozen=True)
class Injection:
    """One injected incident: ``kind`` during ``[start, start + length)`` after the log start,
    expected to be caught by each of ``rules`` (shipped rule files of those names)."""

    kind: str
    rules: tuple[str, ...]
    start: timedelta
    length: timedelta
    description: str


def _at(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


SCENARIO: tuple[Injection, ...] = (
    Injection(
        "5xx_burst",
        ("prediction-5xx-rate", "prediction-5xx-spike"),
        _at(60),
        _at(20),
        "model v3 answers 20% 5xx",
    ),
    Injection(
        "429_storm",
        ("rate-limit-429-storm", "rate-limit-429-spike"),
        _at(120),
        _at(15),
        "client c-7 floods and is rate limited",
    ),
    Injection(
        "latency_spike",
        ("prediction-latency-p99", "prediction-latency-p99-spike"),
        _at(180),
        _at(20),
        "latency x6 for every request",
    ),
    Injection("traffic_drop", ("prediction-traffic-flatline",), _at(240), _at(20), "traffic falls to 4%"),
    Injection("income_drift", ("feature-drift",), _at(300), _at(30), "income x1.8, country mix shifts to US"),
    Injection(
        "unseen_country", ("feature-unseen-country",), _at(345), _at(15), "15% of requests carry country XX"
    ),
    Injection(
        "missing_tenure", ("feature-missing-tenure",), _at(375), _at(15), "40% of requests lack tenure_months"
    ),
)


def generate(
    start: datetime = DEMO_START, length: timedelta = DEMO_LENGTH, seed: int = 7
) -> Iterator[dict[str, object]]:
    """Yield request log documents in time order (vectorised: ~100k documents per second)."""
    rng = np.random.default_rng(seed)
    seconds = np.arange(int(length.total_seconds()))
    rate = np.where(_mask("traffic_drop", seconds), BASE_RATE * 0.04, BASE_RATE)
    normal = rng.poisson(rate)
    storm = np.where(_mask("429_storm", seconds), rng.poisson(4.0, seconds.size), 0)
    offsets = np.concatenate([np.repeat(seconds, normal), np.repeat(seconds, storm)])
    is_storm = np.concatenate([np.zeros(normal.sum(), bool), np.ones(storm.sum(), bool)])
    order = np.argsort(offsets, kind="stable")
    offsets, is_storm = offsets[order], is_storm[order]
    columns = _columns(rng, offsets, is_storm)
    times = offsets + rng.random(offsets.size)
    for row in range(offsets.size):
        when = start + timedelta(seconds=float(times[row]))
        yield {
            "@timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "service": "prediction-api",
            **{name: _plain(values[row]) for name, values in columns.items() if name != "features"},
            "features": columns["features"][row],
        }


def _mask(kind: str, seconds: np.ndarray) -> np.ndarray:
    mask = np.zeros(seconds.size, bool)
    for injection in SCENARIO:
        if injection.kind == kind:
            begin = injection.start.total_seconds()
            mask |= (seconds >= begin) & (seconds < begin + injection.length.total_seconds())
    return mask


def _columns(rng: np.random.Generator, offsets: np.ndarray, storm: np.ndarray) -> dict[str, np.ndarray]:
    n = offsets.size
    version = np.where(rng.random(n) < 0.6, "v3", "v2")
    latency = rng.lognormal(np.log(80.0), 0.45, n) * np.where(_mask("latency_spike", offsets), 6, 1)
    draw = rng.random(n)
    status = np.select(
        [
            storm & (draw < 0.7),
            storm,
            _mask("5xx_burst", offsets) & (version == "v3") & (draw < 0.2),
            draw < 0.004,
            draw < 0.008,
            draw < 0.018,
        ],
        [429, 200, 503, 500, 429, 400],
        default=200,
    )
    client = np.where(storm, "c-7", np.char.add("c-", rng.integers(1, 40, n).astype(str)))
    return {
        "endpoint": np.where(rng.random(n) < 0.9, "/v1/predict", "/v1/explain"),
        "status": status,
        "latency_ms": np.round(latency, 1),
        "model": np.full(n, "churn"),
        "model_version": version,
        "client_id": client,
        "features": _features(rng, offsets),
    }


def _features(rng: np.random.Generator, offsets: np.ndarray) -> np.ndarray:
    n = offsets.size
    drift = _mask("income_drift", offsets)
    country = np.where(
        drift,
        rng.choice(COUNTRIES, n, p=(0.15, 0.15, 0.45, 0.1, 0.1, 0.05)),
        rng.choice(COUNTRIES, n, p=COUNTRY_SHARES),
    )
    country = np.where(_mask("unseen_country", offsets) & (rng.random(n) < 0.15), "XX", country)
    age = np.clip(rng.normal(38, 12, n), 18, 90).astype(int)
    income = np.round(rng.lognormal(np.log(52000), 0.35, n) * np.where(drift, 1.8, 1.0), 2)
    plan = rng.choice(PLANS, n, p=PLAN_SHARES)
    tenure = rng.exponential(20, n).astype(int)
    drop_tenure = _mask("missing_tenure", offsets) & (rng.random(n) < 0.4)
    features = np.empty(n, dtype=object)
    for row in range(n):
        item: dict[str, object] = {
            "age": int(age[row]),
            "income": float(income[row]),
            "country": str(country[row]),
            "plan": str(plan[row]),
        }
        if not drop_tenure[row]:
            item["tenure_months"] = int(tenure[row])
        features[row] = item
    return features


def _plain(value: object) -> object:
    """numpy scalars to plain JSON types."""
    return value.item() if isinstance(value, np.generic) else value


def write_log(
    path: Path, start: datetime = DEMO_START, length: timedelta = DEMO_LENGTH, seed: int = 7
) -> int:
    """Write the demo log as JSON lines; return the number of documents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for document in generate(start, length, seed):
            out.write(json.dumps(document, separators=(",", ":")))
            out.write("\n")
            count += 1
    return count


@dataclass(frozen=True)
class Outcome:
    """What a replay found for one injected incident and one of its rules."""

    injection: Injection
    rule: str
    fired_at: datetime | None
    resolved_at: datetime | None

    @property
    def caught(self) -> bool:
        return self.fired_at is not None and self.resolved_at is not None


# How long after an injection ends its rule may still fire or resolve: the rule's window, delay
# and `for` all push the reaction later than the injected burst itself.
REACTION = timedelta(minutes=15)


def score(
    events: list[tuple[str, str, datetime]], rules: Collection[str], start: datetime = DEMO_START
) -> tuple[list[Outcome], list[tuple[str, str, datetime]]]:
    """Match ``(rule, event, at)`` notifications against the injections whose rule is in ``rules``.

    Returns one ``Outcome`` per such injection (its first firing and the resolve after it inside
    the injection's reaction span) and the notifications that belong to no injection (false alarms).
    """
    outcomes, used = [], set()
    for injection in SCENARIO:
        begin = start + injection.start
        end = begin + injection.length + REACTION
        for name in injection.rules:
            if name not in rules:
                continue
            fired = resolved = None
            for index, (rule, event, at) in enumerate(events):
                if rule != name or not begin <= at <= end:
                    continue
                if event == "firing" and fired is None:
                    fired = at
                    used.add(index)
                elif event == "resolved" and fired is not None and resolved is None:
                    resolved = at
                    used.add(index)
            outcomes.append(Outcome(injection, name, fired, resolved))
    stray = [item for index, item in enumerate(events) if index not in used]
    return outcomes, stray

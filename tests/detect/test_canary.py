"""The canary detector on the real embedded store: a worse candidate fires (error share, latency,
a feature's distribution), an equal one does not, and too few documents are "inconclusive"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.cli import main
from watcher.detect import DETECTORS, canary
from watcher.detect.base import Finding, Status
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
AT = T0 + timedelta(minutes=10)  # a 10m window, no delay: [12:00, 12:10)
ERRORS = {"ratio": {"of": {"status": {"gte": 500}}}}
P90 = {"percentile": {"field": "latency_ms", "q": 90}}
VERSIONS = {"field": "model_version", "baseline": "v3", "candidate": "v4"}


def docs(
    tenant: str, version: str, n: int, errors_in_100: int, slower: float, late: bool = False
) -> list[str]:
    """``n`` requests spread over the window (from minute 3 when ``late``: a version rolled out then)."""
    start, span = (3, 7) if late else (0, 10)
    lines = []
    for i in range(n):
        at = T0 + timedelta(minutes=start + span * i / n)
        doc = {
            "@timestamp": at.isoformat(),
            "tenant": tenant,
            "model_version": version,
            "status": 500 if i % 100 < errors_in_100 else 200,
            "latency_ms": (100 + (i * 37) % 100) * slower,
            "country": ("us", "de", "fr")[i % 3] if not (tenant == "worse" and version == "v4") else "us",
        }
        lines.append(json.dumps(doc))
    return lines


LINES = [
    *docs("worse", "v3", 1000, 1, 1.0),
    *docs("worse", "v4", 800, 4, 1.3, late=True),
    *docs("equal", "v3", 1000, 2, 1.0),
    *docs("equal", "v4", 900, 2, 1.0, late=True),
    *docs("small", "v3", 1000, 1, 1.0),
    *docs("small", "v4", 50, 10, 2.0, late=True),
]


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {
        "name": "v4",
        "source": "logs",
        "window": "10m",
        "delay": "0s",
        "group_by": ["tenant"],
    }
    return Rule.model_validate(base | fields)


def judge(store: LogStore, rule: Rule) -> dict[str, Finding]:
    detector = DETECTORS[rule.detector]
    findings = detector.evaluate(rule, store.evaluate(detector.queries(rule, AT)), AT)
    return {finding.group["tenant"]: finding for finding in findings}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    opened = EmbeddedStore(tmp_path_factory.mktemp("canary") / "logs.duckdb")
    assert opened.ingest_lines(LINES).skipped_total == 0
    yield opened
    opened.close()


def test_is_registered() -> None:
    assert DETECTORS["canary"] is canary


def test_one_query_grouped_by_the_canary_field() -> None:
    (query,) = canary.queries(make_rule(signal=ERRORS, canary=VERSIONS), AT)
    assert query.group_by == ("tenant", "model_version")


def test_a_worse_error_share_fires_an_equal_one_does_not(store: EmbeddedStore) -> None:
    found = judge(store, make_rule(signal=ERRORS, canary={**VERSIONS, "margin": 0.01}))
    worse, equal, small = found["worse"], found["equal"], found["small"]
    assert worse.status is Status.ALERTING
    assert worse.value == 0.04
    assert worse.threshold == pytest.approx(0.02)  # the baseline's 1% plus the margin
    assert worse.reason.startswith(
        "ratio 0.04 for model_version=v4 vs 0.01 for v3 (two-proportion z-test, p=1.4e-05): "
        "the candidate is worse at 0.95 confidence"
    )
    assert worse.details["p_value"] < 0.05
    assert (worse.details["baseline_value"], worse.details["candidate_value"]) == (0.01, 0.04)
    assert equal.status is Status.OK
    assert equal.details["verdict"] == "pass"
    assert small.status is Status.NO_DATA
    assert small.reason == (
        "inconclusive: not enough data: model_version=v4 (candidate) has 50 documents < min_samples 100"
    )


def test_a_slower_candidate_fires_on_the_histogram(store: EmbeddedStore) -> None:
    found = judge(store, make_rule(signal=P90, canary={**VERSIONS, "margin": 0.1, "min_samples": 40}))
    assert found["worse"].status is Status.ALERTING
    assert found["worse"].details["test"] == "Mann-Whitney U"
    assert found["worse"].details["candidate_value"] == pytest.approx(
        1.3 * found["worse"].details["baseline_value"], rel=0.02
    )
    assert found["equal"].status is Status.OK
    assert found["small"].status is Status.ALERTING  # 50 samples, twice as slow: enough at min_samples 40


def test_a_margin_larger_than_the_difference_does_not_fire(store: EmbeddedStore) -> None:
    found = judge(store, make_rule(signal=P90, canary={**VERSIONS, "margin": 0.5}))
    assert found["worse"].status is Status.OK  # significant, but 30% slower is within a 50% margin
    assert found["worse"].details["p_value"] < 0.05


def test_the_newest_version_is_the_candidate(store: EmbeddedStore) -> None:
    rule = make_rule(signal=ERRORS, canary={**VERSIONS, "candidate": "newest"})
    found = judge(store, rule)
    assert found["worse"].status is Status.ALERTING
    assert found["worse"].details["candidate"] == "v4"


def test_a_feature_distribution_drifts_between_the_groups(store: EmbeddedStore) -> None:
    feature = {"name": "country", "type": "categorical"}
    found = judge(store, make_rule(canary={**VERSIONS, "feature": feature}))
    assert found["worse"].status is Status.ALERTING  # v4 of "worse" serves only us
    assert found["worse"].reason.startswith("psi drift of country ")
    assert found["equal"].status is Status.OK


def rollout_lines() -> list[str]:
    """v3 all hour (30 requests a minute, 1% errors); v4 from 12:20 (30 a minute, 10% errors)."""
    lines = []
    for minute in range(60):
        for version, errors in (("v3", 1), ("v4", 10)):
            if version == "v4" and minute < 20:
                continue
            for i in range(30):
                at = T0 + timedelta(minutes=minute, seconds=2 * i)
                status = 500 if (minute * 30 + i) % 100 < errors else 200
                lines.append(
                    json.dumps({"@timestamp": at.isoformat(), "model_version": version, "status": status})
                )
    return lines


def test_a_backtest_says_inconclusive_until_the_newest_version_has_enough_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join(rollout_lines()) + "\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "v4.yaml").write_text(
        "{name: newest-errors, source: logs, every: 1m, window: 10m, delay: 0s,"
        " signal: {ratio: {of: {status: 500}}},"
        " canary: {field: model_version, baseline: v3, candidate: newest, margin: 0.01}}\n"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "sources: {logs: {store: embedded, path: data/logs.duckdb}}\n"
        "state: {path: data/state.sqlite}\n"
        "receivers: {console: {console: {format: text}}}\n"
        "route: {receiver: console, group_by: [rule], group_wait: 0s}\n"
        "rules: [rules]\n"
    )
    span = [
        "--start",
        (T0 + timedelta(minutes=10)).isoformat(),
        "--end",
        (T0 + timedelta(minutes=40)).isoformat(),
    ]
    assert main(["backtest", "--config", str(config), "--logs", str(log), *span]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    told = [(line["event"], line.get("state"), line["at"], line.get("reason")) for line in lines]
    assert told == [
        ("nodata", "entered", "2026-03-01T12:10:00Z",
         "inconclusive: not enough data: no model_version other than 'v3' in the window"),
        ("nodata", "left", "2026-03-01T12:24:00Z",  # 120 requests of v4 in [12:14, 12:24)
         "inconclusive: not enough data: model_version=v4 (candidate) has 90 documents < min_samples 100"),
        ("firing", None, "2026-03-01T12:24:00Z", None),
    ]  # fmt: skip

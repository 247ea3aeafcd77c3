"""The forecast detector on the real embedded store: it fires ahead of a linear climb (before the
limit is crossed, with the predicted crossing time), stays quiet on a day shaped like the days
before it (seasonal), and says why when the history is too short."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.cli import main
from watcher.detect import DETECTORS, forecast
from watcher.detect.base import Finding, Status
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CLIMB_END = T0 + timedelta(hours=6)
THROTTLED = {"ratio": {"of": {"status": 429}}}


def climb_lines(minutes: int = 360) -> list[str]:
    """20 requests a minute (6h by default); the 429 share climbs linearly by 0.09 an hour from 0.2
    (0.74 at 6h, 0.8 at 6h40m)."""
    lines = []
    for minute in range(minutes):
        share = 0.2 + 0.54 * minute / 360
        for i in range(20):
            status = 429 if (i + 0.5) / 20 < share else 200
            at = T0 + timedelta(minutes=minute, seconds=i * 3)
            lines.append(json.dumps({"@timestamp": at.isoformat(), "tenant": "acme", "status": status}))
    return lines


def usage(minute: int) -> float:
    """A quota's use: a daily wave from 0.2 (04:00) to 0.8 (16:00), the same every day."""
    return 0.5 + 0.3 * math.sin(2 * math.pi * (minute - 600) / 1440)


def seasonal_lines(days: int = 3) -> list[str]:
    at = [T0 + timedelta(minutes=m) for m in range(days * 1440)]
    return [json.dumps({"@timestamp": t.isoformat(), "used": usage(m)}) for m, t in enumerate(at)]


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"name": "quota", "source": "logs", "window": "10m", "delay": "0s"}
    return Rule.model_validate(base | fields)


def judge(store: LogStore, rule: Rule, at: datetime) -> Finding:
    detector = DETECTORS[rule.detector]
    (finding,) = detector.evaluate(rule, store.evaluate(detector.queries(rule, at)), at)
    return finding


@pytest.fixture(scope="module")
def climb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("climb") / "logs.duckdb")
    assert store.ingest_lines(climb_lines()).skipped_total == 0
    yield store
    store.close()


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("daily") / "logs.duckdb")
    assert store.ingest_lines(seasonal_lines()).skipped_total == 0
    yield store
    store.close()


def test_is_registered() -> None:
    assert DETECTORS["forecast"] is forecast


def test_one_bucketed_query_over_the_history() -> None:
    rule = make_rule(signal=THROTTLED, forecast={"above": 0.8, "history": "6h"})
    (query,) = forecast.queries(rule, CLIMB_END)
    assert (query.window.start, query.window.end) == (T0, CLIMB_END)
    assert query.buckets == timedelta(minutes=10)


def test_fires_ahead_of_a_linear_climb_with_the_crossing_time(climb: EmbeddedStore) -> None:
    rule = make_rule(signal=THROTTLED, forecast={"above": 0.8, "history": "6h", "horizon": "1h"})
    finding = judge(climb, rule, CLIMB_END)
    assert finding.status is Status.ALERTING
    assert finding.value is not None
    assert finding.value < 0.8
    assert finding.threshold == 0.8
    crossing = datetime.fromisoformat(finding.details["crossing_at"])
    # 0.54 in 6h is 0.09/h: from 0.73 (the last window's mean) 0.8 is about 45 minutes away.
    assert CLIMB_END + timedelta(minutes=35) < crossing < CLIMB_END + timedelta(minutes=55)
    assert finding.details["slope_per_hour"] == pytest.approx(0.09, abs=0.005)
    assert finding.reason.startswith("ratio 0.7")
    assert f"to go above 0.8 at {crossing:%Y-%m-%d %H:%M} UTC, in {finding.details['crossing_in']}" in (
        finding.reason
    )
    assert finding.details["forecast"][0][0] == CLIMB_END.isoformat()  # the chart's forecast line


@pytest.mark.parametrize(
    ("horizon", "severity", "limit"),
    [("30m", None, 0.8), ("1h", "warning", 0.8), ("2h", "critical", 0.9)],
)
def test_the_severity_is_the_most_severe_level_reached_within_the_horizon(
    climb: EmbeddedStore, horizon: str, severity: str | None, limit: float
) -> None:
    """From 0.73 at 0.09/h: 0.8 is about 45 minutes away, 0.9 about 1h55m."""
    levels = {"above": {"warning": 0.8, "critical": 0.9}, "history": "6h", "horizon": horizon}
    finding = judge(climb, make_rule(signal=THROTTLED, forecast=levels), CLIMB_END)
    assert finding.severity == severity
    assert finding.threshold == limit
    if severity is None:
        assert finding.status is Status.OK
        assert "is not forecast to cross 0.8 within 30m" in finding.reason
    else:
        assert finding.status is Status.ALERTING
        assert f"to go above {limit:g} ({severity}) at " in finding.reason
        assert finding.details["limit"] == limit


def test_is_quiet_while_the_crossing_is_beyond_the_horizon(climb: EmbeddedStore) -> None:
    rule = make_rule(signal=THROTTLED, forecast={"above": 0.8, "history": "3h", "horizon": "1h"})
    finding = judge(climb, rule, CLIMB_END - timedelta(hours=2))  # at 0.56: 2.7h away
    assert finding.status is Status.OK
    assert finding.reason.startswith("ratio 0.5")
    assert "is not forecast to cross 0.8 within 1h (+0.091/h)" in finding.reason


def test_seasonal_stays_quiet_on_a_day_like_the_days_before(daily: EmbeddedStore) -> None:
    """On the third day's morning rise a line through the last 3h would cross 0.85 within 6h; the
    seasonal fit knows the day peaks at 0.8."""
    at = T0 + timedelta(days=2, hours=10)  # the wave's steepest rise, at 0.5
    limit = {"above": 0.85, "horizon": "6h"}
    used = {"stat": {"field": "used", "fn": "avg"}}
    linear = judge(daily, make_rule(signal=used, forecast={**limit, "history": "3h"}), at)
    assert linear.status is Status.ALERTING  # what the seasonal method is for
    seasonal = make_rule(
        signal=used, forecast={**limit, "history": "2d", "method": "seasonal", "season": "1d"}
    )
    finding = judge(daily, seasonal, at)
    assert finding.status is Status.OK, finding.reason
    peak = max(value for _, value in finding.details["forecast"])
    assert peak == pytest.approx(0.8, abs=0.01)  # the forecast follows the day's shape


def test_seasonal_without_two_seasons_of_data_is_not_enough_data(daily: EmbeddedStore) -> None:
    rule = make_rule(
        signal={"stat": {"field": "used", "fn": "avg"}},
        forecast={"above": 0.9, "history": "2d", "method": "seasonal", "season": "1d", "min_points": 10},
    )
    finding = judge(daily, rule, T0 + timedelta(days=1, hours=12))
    assert finding.status is Status.NO_DATA
    assert (
        finding.reason == "not enough data: seasonal needs two seasons (2d) of history, the data covers 1d12h"
    )


def test_a_short_history_is_not_enough_data(climb: EmbeddedStore) -> None:
    rule = make_rule(signal=THROTTLED, forecast={"above": 0.8, "history": "6h"})
    finding = judge(climb, rule, T0 + timedelta(hours=2))
    assert finding.status is Status.NO_DATA
    assert finding.reason == "not enough data: 12 of 36 windows of 10m have a value (need 18)"


def test_below_limit_and_groups(climb: EmbeddedStore) -> None:
    """The share of successful requests falls: ``below`` alerts before it reaches the floor."""
    rule = make_rule(
        signal={"ratio": {"of": {"status": 200}}},
        group_by=["tenant"],
        forecast={"below": 0.2, "history": "6h", "horizon": "1h"},
    )
    finding = judge(climb, rule, CLIMB_END)
    assert (finding.group, finding.status) == ({"tenant": "acme"}, Status.ALERTING)
    assert "to go below 0.2 at" in finding.reason


def test_a_backtest_fires_the_forecast_long_before_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same 429 share, judged by a threshold and by a forecast of it, replayed over 8h."""
    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join(climb_lines(480)) + "\n")
    (tmp_path / "rules").mkdir()
    common = "source: logs, every: 5m, window: 10m, delay: 0s, signal: {ratio: {of: {status: 429}}}"
    (tmp_path / "rules" / "rules.yaml").write_text(
        f"rules:\n  - {{name: throttled, {common}, threshold: {{above: 0.8}}}}\n"
        f"  - {{name: throttled-soon, {common}, forecast: {{above: 0.8, history: 3h, horizon: 1h}}}}\n"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "sources: {logs: {store: embedded, path: data/logs.duckdb}}\n"
        "state: {path: data/state.sqlite}\n"
        "receivers: {console: {console: {format: text}}}\n"
        "route: {receiver: console, group_by: [rule], group_wait: 0s}\n"
        "rules: [rules]\n"
    )
    span = ["--start", T0.isoformat(), "--end", (T0 + timedelta(hours=8)).isoformat()]
    assert main(["backtest", "--config", str(config), "--logs", str(log), *span]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    fired = {line["rule"]: datetime.fromisoformat(line["at"]) for line in lines if line["event"] == "firing"}
    assert T0 + timedelta(hours=6, minutes=40) <= fired["throttled"] <= T0 + timedelta(hours=7)
    assert fired["throttled-soon"] <= fired["throttled"] - timedelta(minutes=45)
    assert fired["throttled-soon"] >= T0 + timedelta(hours=5, minutes=30)  # not from the start: a forecast


def test_a_long_horizon_keeps_at_most_120_forecast_points(climb: EmbeddedStore) -> None:
    rule = make_rule(
        window="1m", signal=THROTTLED, forecast={"above": 0.99, "history": "6h", "horizon": "1d"}
    )
    finding = judge(climb, rule, CLIMB_END)
    assert finding.status is Status.ALERTING  # 0.99 in about 3h at 0.09/h
    assert len(finding.details["forecast"]) <= 120
    assert finding.details["forecast"][-1][0] >= (CLIMB_END + timedelta(hours=23)).isoformat()

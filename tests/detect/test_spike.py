"""The spike detector: a signal against an earlier window (ratio) or its own history (robust z)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from watcher.detect import DETECTORS, spike
from watcher.detect.base import Status, rule_window
from watcher.query import Group, QueryResult
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
P99 = {"percentile": {"field": "latency_ms", "q": 99}}


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"name": "latency", "source": "demo", "window": "5m", "delay": "0s"}
    return Rule.model_validate(base | fields)


def p99(count: int, value: float | None) -> dict[str, Any]:
    return {"count": count, "value": {99.0: value}}


def result(values: dict[str, Any] | None, key: dict[str, str] | None = None) -> QueryResult:
    groups = () if values is None else (Group(key or {}, values),)
    return QueryResult("q", groups)


def test_is_registered() -> None:
    assert DETECTORS["spike"] is spike


# --------------------------------------------------------------------------- queries


def test_offset_mode_asks_for_the_current_and_the_earlier_window() -> None:
    rule = make_rule(signal=P99, spike={"offset": "1d"})
    current, earlier = spike.queries(rule, AT)
    assert current.window == rule_window(rule, AT)
    assert earlier.window == rule_window(rule, AT).shifted(timedelta(days=1))
    assert current.aggregates == earlier.aggregates
    assert [current.id, earlier.id] == ["latency#current", "latency#earlier1"]


def test_zscore_mode_asks_for_the_windows_just_before() -> None:
    rule = make_rule(signal=P99, spike={"zscore": {"history": 4}})
    windows = [q.window for q in spike.queries(rule, AT)]
    assert [w.end for w in windows] == [AT - timedelta(minutes=5 * k) for k in range(5)]


# --------------------------------------------------------------------------- offset


def test_p99_twice_yesterdays_alerts_in_signal_units() -> None:
    rule = make_rule(signal=P99, spike={"offset": "1d", "factor": 2})
    (finding,) = spike.evaluate(rule, [result(p99(500, 600.0)), result(p99(480, 250.0))], AT)
    assert finding.status is Status.ALERTING
    assert (finding.value, finding.threshold) == (600.0, 500.0)
    assert finding.reason == "p99(latency_ms) 600 is 2.4x its value 1d earlier (250); spike at 2x"
    assert finding.details["ratio"] == pytest.approx(2.4)
    assert finding.details["reference_events"] == 480


def test_a_small_rise_is_ok() -> None:
    rule = make_rule(signal=P99, spike={"offset": "1d"})
    (finding,) = spike.evaluate(rule, [result(p99(500, 300.0)), result(p99(480, 250.0))], AT)
    assert finding.status is Status.OK
    assert finding.reason == "p99(latency_ms) 300 is 1.2x its value 1d earlier (250)"


def test_down_direction_catches_a_traffic_drop_and_ignores_a_rise() -> None:
    rule = make_rule(spike={"offset": "7d", "factor": 4, "direction": "down", "min_volume": 0})
    (drop,) = spike.evaluate(rule, [result({"count": 200}), result({"count": 1000})], AT)
    (rise,) = spike.evaluate(rule, [result({"count": 9000}), result({"count": 1000})], AT)
    assert drop.status is Status.ALERTING
    assert drop.threshold == 250
    assert drop.reason == "count 200 is 0.2x its value 7d earlier (1000); drop at 1/4"
    assert rise.status is Status.OK


def test_both_directions() -> None:
    rule = make_rule(spike={"offset": "1d", "direction": "both", "min_volume": 0})
    up = spike.evaluate(rule, [result({"count": 3000}), result({"count": 1000})], AT)[0]
    down = spike.evaluate(rule, [result({"count": 300}), result({"count": 1000})], AT)[0]
    assert (up.status, down.status) == (Status.ALERTING, Status.ALERTING)


def test_a_share_rising_from_zero_alerts_unless_still_below_min_value() -> None:
    share = {"ratio": {"of": {"status": 429}}}
    rule = make_rule(signal=share, spike={"offset": "1d", "min_volume": 100})
    (finding,) = spike.evaluate(
        rule, [result({"count": 1000, "value": 50}), result({"count": 1000, "value": 0})], AT
    )
    assert finding.status is Status.ALERTING
    assert finding.details["ratio"] is None
    assert finding.reason == "ratio 0.05 was 0 1d earlier; spike at 2x"
    quiet = make_rule(signal=share, spike={"offset": "1d", "min_value": 0.1})
    (ignored,) = spike.evaluate(
        quiet, [result({"count": 1000, "value": 50}), result({"count": 1000, "value": 0})], AT
    )
    assert ignored.status is Status.OK


def test_low_volume_is_not_enough_data() -> None:
    rule = make_rule(signal=P99, spike={"offset": "1d", "min_volume": 100}, min_events=150)
    (current,) = spike.evaluate(rule, [result(p99(120, 900.0)), result(p99(480, 250.0))], AT)
    (earlier,) = spike.evaluate(rule, [result(p99(500, 900.0)), result(p99(30, 250.0))], AT)
    (undefined,) = spike.evaluate(rule, [result(p99(500, None)), result(p99(480, 250.0))], AT)
    assert (current.status, current.reason) == (
        Status.NO_DATA,
        "not enough data: 120 documents < min_events 150",
    )
    assert (earlier.status, earlier.reason) == (
        Status.NO_DATA,
        "not enough reference data: 30 documents 1d earlier",
    )
    assert (undefined.status, undefined.reason) == (
        Status.NO_DATA,
        "p99(latency_ms) is undefined over 500 documents",
    )


def test_groups_are_compared_with_their_own_reference() -> None:
    rule = make_rule(signal=P99, group_by=["model_version"], spike={"offset": "1d"})
    current = QueryResult(
        "c",
        (Group({"model_version": "v3"}, p99(500, 900.0)), Group({"model_version": "v4"}, p99(500, 900.0))),
    )
    earlier = QueryResult("e", (Group({"model_version": "v3"}, p99(500, 800.0)),))
    findings = spike.evaluate(rule, [current, earlier], AT, known_groups=[{"model_version": "v2"}])
    by_version = {f.group["model_version"]: f.status for f in findings}
    assert by_version == {"v3": Status.OK, "v4": Status.NO_DATA, "v2": Status.NO_DATA}


def test_a_store_error_is_an_error_not_a_spike() -> None:
    rule = make_rule(signal=P99, spike={"offset": "1d"})
    (finding,) = spike.evaluate(rule, [result(p99(500, 600.0)), QueryResult("e", error="timeout")], AT)
    assert (finding.status, finding.reason) == (Status.ERROR, "store error: timeout")


# --------------------------------------------------------------------------- z-score

HISTORY = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 103.0, 97.0, 100.0, 101.0, 99.0, 100.0]


def _zscore(current: float, history: list[float | None], **spec: Any) -> Any:
    rule = make_rule(signal=P99, spike={"zscore": {"history": len(history)}, **spec})
    earlier = [result(p99(500, v)) if v is not None else result(p99(5, None)) for v in history]
    (finding,) = spike.evaluate(rule, [result(p99(500, current)), *earlier], AT)
    return finding


def test_zscore_flags_a_value_far_from_the_median() -> None:
    finding = _zscore(130.0, HISTORY)
    # median 100, MAD 1 -> scale 1.4826, z = 30 / 1.4826
    assert finding.status is Status.ALERTING
    assert finding.details["zscore"] == pytest.approx(30 / 1.4826)
    assert finding.threshold == pytest.approx(100 + 3.5 * 1.4826)
    assert finding.reason.startswith(
        "p99(latency_ms) 130 (z=20.23 against the median 100 of 12 earlier windows)"
    )


def test_zscore_within_the_band_is_ok_and_down_needs_the_direction() -> None:
    assert _zscore(102.0, HISTORY).status is Status.OK
    assert _zscore(70.0, HISTORY).status is Status.OK
    assert _zscore(70.0, HISTORY, direction="down").status is Status.ALERTING


def test_zscore_with_constant_history_alerts_on_any_change() -> None:
    finding = _zscore(5.0, [0.0] * 6)
    assert finding.status is Status.ALERTING
    assert finding.details["zscore"] is None
    assert "history constant at 0" in finding.reason
    assert _zscore(0.0, [0.0] * 6).status is Status.OK


def test_zscore_falls_back_to_mean_deviation_when_mad_is_zero() -> None:
    median, scale = spike.robust_scale([5.0, 5.0, 5.0, 5.0, 9.0])
    assert (median, scale) == (5.0, pytest.approx(1.2533 * 4 / 5))


def test_zscore_needs_enough_history_windows() -> None:
    finding = _zscore(130.0, [100.0, 101.0, None, None, None, None])
    assert finding.status is Status.NO_DATA
    assert finding.reason == "not enough history: 2 of 6 earlier windows have 100+ documents (need 3)"


# --------------------------------------------------------------------------- rule validation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {},
            "spike needs exactly one of 'offset' or 'reference' (compare with earlier windows) or 'zscore' "
            "(compare with recent history)",
        ),
        ({"offset": "1d", "zscore": {}}, "spike needs exactly one of"),
        ({"zscore": {}, "factor": 3}, "'factor' applies to 'offset'; a zscore spike uses 'zscore.above'"),
        ({"offset": "1d", "factor": 1}, "Input should be greater than 1"),
        ({"zscore": {"history": 5, "min_history": 6}}, "min_history 6 is more than history 5"),
        ({"offset": "1d", "direction": "sideways"}, "Input should be 'up', 'down' or 'both'"),
    ],
)
def test_bad_spike_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_rule(spike=spec)
    assert message in str(caught.value)


# --------------------------------------------------------------------------- against the store


def test_latency_spike_against_yesterday_in_the_embedded_store(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    lines = []
    for day, latency in ((1, 40.0), (0, 400.0)):
        start = AT - timedelta(days=day, minutes=5)
        for i in range(300):
            stamp = (start + timedelta(seconds=i)).isoformat()
            lines.append(json.dumps({"@timestamp": stamp, "latency_ms": latency + i % 10, "status": 200}))
    store.ingest_lines(lines)
    rule = make_rule(signal=P99, spike={"offset": "1d", "factor": 3})
    results = store.evaluate(spike.queries(rule, AT))
    store.close()
    (finding,) = spike.evaluate(rule, results, AT)
    assert finding.status is Status.ALERTING
    assert finding.details["current"] == pytest.approx(409.0, abs=0.1)
    assert finding.details["reference"] == pytest.approx(49.0, abs=0.1)

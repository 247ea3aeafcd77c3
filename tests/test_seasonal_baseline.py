"""Seasonal baselines (``watcher baseline build --by hour|weekday_hour``): a feature that follows
the clock does not drift against the profile of its hour, while it drifts all day against a
whole-day profile. Profiles built and judged on a real embedded store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.baseline import load_profile
from watcher.cli import main
from watcher.detect import drift, validity
from watcher.detect.base import Finding, Status
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore

DAY0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
HOUR = "features.hour"
AMOUNT = "features.amount"
ROOT = Path(__file__).resolve().parents[1]


def _lines(start: datetime, hours: int, per_hour: int, features: Any = None) -> Iterator[str]:
    """``per_hour`` rows each hour: the request's hour as a feature, an amount that does not
    follow the clock, and a note missing at night."""
    for index in range(hours * per_hour):
        stamp = start + timedelta(hours=index // per_hour, seconds=(index % per_hour) * 3600 / per_hour)
        row: dict[str, Any] = {"hour": stamp.hour, "amount": index % 10}
        if stamp.hour >= 6 or index % 2:
            row["note"] = "ok"
        if features is not None:
            row = features(stamp, index)
        yield json.dumps({"@timestamp": stamp.isoformat(), "features": row})


def _config(folder: Path, *days: list[str]) -> Path:
    (folder / "logs").mkdir(exist_ok=True)
    for index, lines in enumerate(days):
        (folder / "logs" / f"{index}.jsonl").write_text("".join(line + "\n" for line in lines))
    config = folder / "watcher.yaml"
    config.write_text("sources:\n  demo: {store: embedded, path: logs.duckdb, ingest: ['logs/*.jsonl']}\n")
    return config


def _build(config: Path, out: Path, start: datetime, end: datetime, *args: str) -> int:
    span = ["--start", start.isoformat(), "--end", end.isoformat()]
    return main(["baseline", "build", "-c", str(config), "--source", "demo", *span, *args, "-o", str(out)])


def _drift(profile: Path, store: EmbeddedStore, at: datetime, features: list[str] | None = None) -> Finding:
    spec = {"baseline": str(profile), "features": features or [HOUR, AMOUNT], "min_samples": 25}
    rule = Rule.model_validate(
        {"name": "hourly", "source": "demo", "window": "1h", "delay": "0s", "drift": spec}
    )
    (finding,) = drift.evaluate(rule, store.evaluate(drift.queries(rule, at)), at)
    return finding


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path, EmbeddedStore]:
    """Three days of training and a normal fourth day in one store; a whole-day and an hourly profile."""
    config = _config(tmp_path, list(_lines(DAY0, 96, 120)))
    whole, hourly = tmp_path / "whole.json", tmp_path / "hourly.json"
    features = ["--features", f"{HOUR},{AMOUNT},features.note"]
    assert _build(config, whole, DAY0, DAY0 + timedelta(days=3), *features) == 0
    assert _build(config, hourly, DAY0, DAY0 + timedelta(days=3), *features, "--by", "hour") == 0
    return whole, hourly, EmbeddedStore(tmp_path / "logs.duckdb")


def test_an_hour_of_day_feature_drifts_against_the_whole_day_but_not_against_its_hour(
    trained: tuple[Path, Path, EmbeddedStore],
) -> None:
    whole, hourly, store = trained
    normal_day = [DAY0 + timedelta(days=3, hours=h) for h in (1, 9, 13, 20)]
    normal_day.append(DAY0 + timedelta(days=3, hours=13, minutes=30))  # a window over two slots

    against_the_day = [_drift(whole, store, at) for at in normal_day]
    against_the_hour = [_drift(hourly, store, at) for at in normal_day]
    store.close()

    assert all(f.status is Status.ALERTING and f.details["drifted"] == [HOUR] for f in against_the_day)
    assert min(f.details["features"][HOUR]["score"] for f in against_the_day) > 2
    assert [f.status for f in against_the_hour] == [Status.OK] * 5, [f.reason for f in against_the_hour]
    assert max(f.details["features"][HOUR]["score"] for f in against_the_hour) < 0.01
    assert against_the_hour[2].details["slots"] == {"12": 1.0}
    assert against_the_hour[4].details["slots"] == {"12": 0.5, "13": 0.5}


def test_an_hourly_profile_still_finds_drift_within_the_hour(tmp_path: Path) -> None:
    shifted = [
        line.replace('"hour": 8', '"hour": 3') for line in _lines(DAY0 + timedelta(days=3, hours=8), 1, 120)
    ]
    config = _config(tmp_path, list(_lines(DAY0, 72, 120)), shifted)
    hourly = tmp_path / "hourly.json"
    assert _build(config, hourly, DAY0, DAY0 + timedelta(days=3), "--features", HOUR, "--by", "hour") == 0
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    finding = _drift(hourly, store, DAY0 + timedelta(days=3, hours=9), [HOUR])
    store.close()
    assert finding.status is Status.ALERTING
    assert finding.severity == "critical"


def test_validity_expects_the_missing_rate_of_the_hour(trained: tuple[Path, Path, EmbeddedStore]) -> None:
    whole, hourly, store = trained
    night = DAY0 + timedelta(days=3, hours=3)  # the note is missing for half the rows at night

    def judge(profile: Path) -> Finding:
        spec = {"baseline": str(profile), "features": ["features.note"], "missing_share_above": 0.1}
        rule = Rule.model_validate(
            {"name": "v", "source": "demo", "window": "1h", "delay": "0s", "validity": spec}
        )
        (finding,) = validity.evaluate(rule, store.evaluate(validity.queries(rule, night)), night)
        return finding

    against_the_day, against_the_hour = judge(whole), judge(hourly)
    store.close()
    assert against_the_day.status is Status.ALERTING
    assert against_the_day.reason == "features.note: 50.0% missing (limit 22.5%)"
    assert against_the_hour.status is Status.OK


def _weekly(stamp: datetime, index: int) -> dict[str, Any]:
    """Load that follows the hour, and doubles at the weekend."""
    return {"load": stamp.hour * (2 if stamp.weekday() >= 5 else 1) + index % 3}


def test_weekday_hour_slots_tell_the_weekend_from_the_week(tmp_path: Path) -> None:
    two_weeks = list(_lines(DAY0, 20 * 24, 30, _weekly))  # two weeks of training, then a week
    config = _config(tmp_path, two_weeks)
    hourly, weekly = tmp_path / "hourly.json", tmp_path / "weekly.json"
    end = DAY0 + timedelta(days=14)
    assert _build(config, hourly, DAY0, end, "--features", "features.load", "--by", "hour") == 0
    args = ("--features", "features.load", "--by", "weekday_hour", "--min-slot-rows", "50")
    assert _build(config, weekly, DAY0, end, *args) == 0
    profile = load_profile(weekly)
    saturday_noon = end + timedelta(days=5, hours=13)  # the window 12:00-13:00 of Saturday 2026-01-24
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    by_hour = _drift(hourly, store, saturday_noon, ["features.load"])
    by_weekday_hour = _drift(weekly, store, saturday_noon, ["features.load"])
    store.close()

    assert (profile.version, profile.by) == (2, "weekday_hour")
    assert profile.slots is not None
    assert len(profile.slots) == 168
    assert (list(profile.slots)[:2], list(profile.slots)[-1]) == (["mon 00", "mon 01"], "sun 23")
    assert (profile.slots["sat 12"].rows, profile.slots["sat 12"].hours) == (60, 2)
    assert by_hour.status is Status.ALERTING
    assert by_weekday_hour.status is Status.OK
    assert by_weekday_hour.details["slots"] == {"sat 12": 1.0}


def test_a_slot_with_too_few_rows_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, list(_lines(DAY0, 72, 120)))
    out = tmp_path / "weekly.json"

    code = _build(config, out, DAY0, DAY0 + timedelta(days=3), "--features", HOUR, "--by", "weekday_hour")

    assert code == 1
    assert not out.exists()
    assert capsys.readouterr().err == (
        "watcher baseline: 96 of the 168 slots of --by weekday_hour have fewer than 100 rows in source "
        "'demo' from 2026-01-05T00:00:00Z to 2026-01-08T00:00:00Z: 'fri 00' (0), 'fri 01' (0), "
        "'fri 02' (0), 'fri 03' (0), 'fri 04' (0) and 91 more; use a longer range (several weeks), "
        "--by hour, or a lower --min-slot-rows; no profile written\n"
    )


def test_a_range_not_on_whole_hours_is_refused_for_slots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, list(_lines(DAY0, 24, 10)))
    start = DAY0 + timedelta(minutes=30)
    code = _build(
        config, tmp_path / "p.json", start, DAY0 + timedelta(days=1), "--features", HOUR, "--by", "hour"
    )
    assert code == 2
    assert "--by needs --start and --end on whole hours (UTC)" in capsys.readouterr().err


def test_slots_from_a_training_file_by_its_time_column(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in _lines(DAY0, 48, 120)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"ts": r["@timestamp"], **r["features"]}) + "\n" for r in rows))
    out = tmp_path / "hourly.json"
    args = ["--from-file", str(train), "--time-field", "ts", "--prefix", "features.", "--by", "hour"]
    assert main(["baseline", "build", *args, "-o", str(out)]) == 0
    profile = load_profile(out)
    assert sorted(profile.features) == [AMOUNT, HOUR, "features.note"]  # not the time column
    assert profile.slots is not None
    assert (profile.slots["07"].rows, profile.slots["07"].hours) == (240, 2)
    assert profile.slots["07"].features[HOUR].count == 240
    assert profile.slots["03"].features["features.note"].missing_rate == 0.5


def test_old_profiles_still_load_and_whole_range_profiles_stay_version_1(tmp_path: Path) -> None:
    shipped = load_profile(ROOT / "rules" / "baselines" / "demo-features.json")
    assert json.loads((ROOT / "rules" / "baselines" / "demo-features.json").read_text())["version"] == 1
    assert (shipped.version, shipped.by, shipped.slots) == (1, None, None)

    config = _config(tmp_path, list(_lines(DAY0, 24, 120)))
    out = tmp_path / "whole.json"
    assert _build(config, out, DAY0, DAY0 + timedelta(days=1), "--features", HOUR) == 0
    written = json.loads(out.read_text())
    assert (written["version"], written["by"], written["slots"]) == (1, None, None)


# --------------------------------------------------------------------------- clock features

HOUR_WARNING = (
    "watcher baseline: warning: feature 'features.hour' is the clock: it equals the hour of '@timestamp' "
    "in 100.0% of rows, so it drifts against a whole-range profile all the time; leave it out of "
    "--features, or build a seasonal profile (--by hour)\n"
)


def _clocked(stamp: datetime, index: int) -> dict[str, Any]:
    return {
        "hour": stamp.hour,
        "minute": stamp.minute,
        "daypart": "night" if stamp.hour < 6 else "day",
        "amount": index % 7,
        "flag": "a" if index % 2 else "b",
    }


def test_the_builder_warns_of_features_that_are_the_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, list(_lines(DAY0, 72, 60, _clocked)))
    names = ",".join(f"features.{n}" for n in ("hour", "minute", "daypart", "amount", "flag"))

    assert _build(config, tmp_path / "p.json", DAY0, DAY0 + timedelta(days=3), "--features", names) == 0

    assert capsys.readouterr().err == HOUR_WARNING + (
        "watcher baseline: warning: feature 'features.minute' is the clock: it equals the minute of "
        "'@timestamp' in 100.0% of rows, so it drifts against a whole-range profile all the time; leave it "
        "out of --features\n"
        "watcher baseline: warning: feature 'features.daypart' is the clock: it is one value per hour of "
        "'@timestamp' in 100.0% of rows, so it drifts against a whole-range profile all the time; leave it "
        "out of --features, or build a seasonal profile (--by hour)\n"
    )


def test_an_hourly_profile_is_not_warned_of_its_hour_feature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, list(_lines(DAY0, 72, 120)))
    args = ("--features", f"{HOUR},{AMOUNT}", "--by", "hour")
    assert _build(config, tmp_path / "p.json", DAY0, DAY0 + timedelta(days=3), *args) == 0
    assert capsys.readouterr().err == ""


def test_a_training_file_is_checked_against_its_time_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [json.loads(line) for line in _lines(DAY0, 48, 30)]
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"@timestamp": r["@timestamp"], **r["features"]}) + "\n" for r in rows)
    )
    args = ["--from-file", str(train), "--time-field", "@timestamp", "--prefix", "features."]
    assert main(["baseline", "build", *args, "-o", str(tmp_path / "p.json")]) == 0
    assert capsys.readouterr().err == HOUR_WARNING

"""Reading log lines: timestamps in every accepted form, and bad lines counted under their reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.query import Aggregate, Count, Missing, Query, Stats, Terms, Window
from watcher.store.embedded import EmbeddedStore
from watcher.store.ingest import (
    BAD_TIMESTAMP,
    EXPIRED,
    MISSING_TIMESTAMP,
    NOT_AN_OBJECT,
    NOT_JSON,
    TimestampError,
    field_value,
    parse_lines,
    parse_timestamp,
)

NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NOON = 1717243200

TIMESTAMPS: dict[str, tuple[Any, datetime]] = {
    "ISO with Z": ("2024-06-01T12:00:00Z", NOON),
    "ISO with an offset": ("2024-06-01T14:00:00+02:00", NOON),
    "ISO with a negative offset": ("2024-06-01T07:00:00-05:00", NOON),
    "ISO without offset is UTC": ("2024-06-01T12:00:00", NOON),
    "ISO with a space": ("2024-06-01 12:00:00.250+00:00", NOON + timedelta(milliseconds=250)),
    "ISO with nanoseconds": ("2024-06-01T12:00:00.123456789Z", NOON + timedelta(microseconds=123456)),
    "ISO date only": ("2024-06-01", NOON - timedelta(hours=12)),
}


@pytest.mark.parametrize(("value", "expected"), TIMESTAMPS.values(), ids=TIMESTAMPS.keys())
@pytest.mark.parametrize("time_format", ["iso8601", "epoch_s", "epoch_ms"])
def test_iso_timestamps_are_read_whatever_the_time_format(
    value: Any, expected: datetime, time_format: Any
) -> None:
    parsed = parse_timestamp(value, time_format)
    assert parsed == expected
    assert parsed.tzinfo is UTC


EPOCHS: dict[str, tuple[Any, Any, datetime]] = {
    "epoch seconds": (EPOCH_NOON, "epoch_s", NOON),
    "epoch seconds, fractional": (EPOCH_NOON + 0.5, "epoch_s", NOON + timedelta(milliseconds=500)),
    "epoch milliseconds": (EPOCH_NOON * 1000 + 7, "epoch_ms", NOON + timedelta(milliseconds=7)),
    "epoch milliseconds, fractional": (
        EPOCH_NOON * 1000 + 0.5,
        "epoch_ms",
        NOON + timedelta(microseconds=500),
    ),
    "epoch seconds as a string": (str(EPOCH_NOON), "epoch_s", NOON),
    "epoch milliseconds as a string": (f"{EPOCH_NOON}250", "epoch_ms", NOON + timedelta(milliseconds=250)),
    "epoch seconds as a fractional string": (
        f"{EPOCH_NOON}.5",
        "epoch_s",
        NOON + timedelta(milliseconds=500),
    ),
    "a small number is what it says, not a guess": (12345, "epoch_ms", EPOCH + timedelta(milliseconds=12345)),
    "a numeric string is an epoch, not a basic ISO date": (
        "20240601",
        "epoch_s",
        EPOCH + timedelta(seconds=20240601),
    ),
}


@pytest.mark.parametrize(("value", "time_format", "expected"), EPOCHS.values(), ids=EPOCHS.keys())
def test_numbers_are_read_in_the_declared_unit(value: Any, time_format: Any, expected: datetime) -> None:
    assert parse_timestamp(value, time_format) == expected


@pytest.mark.parametrize("value", [12345, EPOCH_NOON, EPOCH_NOON * 1000, 1.5, "12345", "20240601"])
def test_numbers_without_a_declared_unit_are_refused(value: Any) -> None:
    with pytest.raises(TimestampError) as caught:
        parse_timestamp(value)
    assert str(caught.value) == (
        f"numeric timestamp {value!r} has no unit: set time_format: epoch_s or epoch_ms on the source"
    )


BAD_TIMESTAMPS: dict[str, tuple[Any, str]] = {
    "words": ("yesterday", "not an ISO 8601 timestamp: 'yesterday'"),
    "empty": ("", "not an ISO 8601 timestamp: ''"),
    "boolean": (True, "timestamp must be a string or a number, got bool"),
    "object": ({"s": 1}, "timestamp must be a string or a number, got dict"),
    "list": ([1], "timestamp must be a string or a number, got list"),
    "beyond year 9999": (10**21, "epoch timestamp out of range: 1000000000000000000000"),
    "not a number": (float("nan"), "epoch timestamp out of range: nan"),
    "before year 1 in UTC": (
        "0001-01-01T00:00:00+01:00",
        "timestamp out of range in UTC: '0001-01-01T00:00:00+01:00'",
    ),
    "after year 9999 in UTC": (
        "9999-12-31T23:30:00-01:00",
        "timestamp out of range in UTC: '9999-12-31T23:30:00-01:00'",
    ),
}


@pytest.mark.parametrize(("value", "message"), BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
def test_unparsable_timestamps_say_why(value: Any, message: str) -> None:
    with pytest.raises(TimestampError) as caught:
        parse_timestamp(value, "epoch_s")
    assert str(caught.value) == message


def test_fields_by_dotted_name_literal_key_first() -> None:
    doc = {"@timestamp": 1, "meta": {"ts": 2}, "a.b": 3, "a": {"b": 4}}
    assert field_value(doc, "@timestamp") == 1
    assert field_value(doc, "meta.ts") == 2
    assert field_value(doc, "a.b") == 3
    assert field_value(doc, "meta.nope") is None
    assert field_value(doc, "@timestamp.x") is None


def test_bad_lines_are_counted_under_their_reason() -> None:
    lines: list[str | bytes] = [
        '{"@timestamp": "2024-06-01T12:00:00Z", "a": 1}',
        b'{"@timestamp": 1717243200000, "a": 2}\r',  # epoch_ms, declared below
        "not json",
        '{"@timestamp": "2024-06-01T12:00:00Z"',  # cut short
        b'{"@timestamp": 1717243200, "x": "\xff"}',  # not UTF-8
        "[1, 2]",
        '"just a string"',
        '{"a": 1}',
        '{"@timestamp": null}',
        '{"@timestamp": "soon"}',
        '{"@timestamp": true}',
        "",
        "   ",
    ]
    parsed = parse_lines(lines, "@timestamp", time_format="epoch_ms")
    assert parsed.report.lines_read == 11  # blank lines are not lines of log
    assert dict(parsed.report.skipped) == {
        NOT_JSON: 3,
        NOT_AN_OBJECT: 2,
        MISSING_TIMESTAMP: 2,
        BAD_TIMESTAMP: 2,
    }
    assert {reason: (r.location, r.detail) for reason, r in parsed.report.first.items()} == {
        NOT_JSON: ("line 3", "not JSON"),
        NOT_AN_OBJECT: ("line 6", "not a JSON object but an array"),
        MISSING_TIMESTAMP: ("line 8", "no time field '@timestamp'"),
        BAD_TIMESTAMP: ("line 10", "not an ISO 8601 timestamp: 'soon'"),
    }
    assert parsed.report.fields_seen == {"a", "@timestamp"}
    assert parsed.micros == [EPOCH_NOON * 1_000_000] * 2
    assert parsed.docs == [
        '{"@timestamp": "2024-06-01T12:00:00Z", "a": 1}',
        '{"@timestamp": 1717243200000, "a": 2}',
    ]


def test_rows_older_than_a_cutoff_are_skipped() -> None:
    lines = ['{"@timestamp": 1717243199}', '{"@timestamp": 1717243200}']
    parsed = parse_lines(lines, "@timestamp", not_before=EPOCH_NOON * 1_000_000, time_format="epoch_s")
    assert dict(parsed.report.skipped) == {EXPIRED: 1}
    assert len(parsed.docs) == 1


def count_between(store: EmbeddedStore, start: datetime, end: datetime) -> int:
    (result,) = store.evaluate([Query("q", Window(start, end), {"n": Count()})])
    value = result.groups[0].values["n"]
    assert isinstance(value, int)
    return value


def test_the_store_keeps_rows_at_their_utc_instant(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_field="meta.ts", time_format="epoch_s")
    lines = [
        json.dumps({"meta": {"ts": ts}, "n": i})
        for i, ts in enumerate(
            ["2024-06-01T14:00:00+02:00", "2024-06-01T12:00:00Z", EPOCH_NOON, str(EPOCH_NOON)]
        )
    ]
    report = store.ingest_lines([*lines, '{"ts": 1}', "{bad"])
    assert (report.lines_read, report.rows_stored) == (6, 4)
    assert dict(report.skipped) == {MISSING_TIMESTAMP: 1, NOT_JSON: 1}
    assert count_between(store, NOON, NOON + timedelta(microseconds=1)) == 4
    assert store.time_range() == (NOON, NOON)
    store.close()


def test_documents_duckdb_refuses_are_skipped_as_invalid_json(tmp_path: Path) -> None:
    # Python reads a lone surrogate escape; DuckDB's JSON parser does not, and one such row would
    # fail every query, so the store drops it at ingest.
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_format="epoch_s")
    report = store.ingest_lines(['{"@timestamp": 1717243200, "x": "\\ud800"}', '{"@timestamp": 1717243200}'])
    assert report.rows_stored == 1
    assert dict(report.skipped) == {NOT_JSON: 1}
    assert count_between(store, NOON, NOON + timedelta(seconds=1)) == 1
    store.close()


def test_a_string_that_is_not_utf8_is_invalid_json(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_format="epoch_s")
    report = store.ingest_lines(['{"@timestamp": 1717243200, "x": "\ud800"}', '{"@timestamp": 1717243200}'])
    assert (report.rows_stored, dict(report.skipped)) == (1, {NOT_JSON: 1})
    store.close()


def test_wrongly_typed_values_are_stored_and_read_as_missing_numbers(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_format="epoch_s")
    store.ingest_lines(
        json.dumps({"@timestamp": EPOCH_NOON, "latency_ms": value})
        for value in [10, "12.5", "fast", None, {"v": 1}, [1]]
    )
    window = Window(NOON, NOON + timedelta(seconds=1))
    (result,) = store.evaluate([Query("q", window, {"s": Stats("latency_ms"), "m": Missing("latency_ms")})])
    assert result.groups[0].values == {
        "s": {"avg": 11.25, "min": 10.0, "max": 12.5, "sum": 22.5, "count": 2},
        "m": 1,
    }
    store.close()


def test_nan_and_infinity_as_python_writes_them_are_stored_as_null(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb", time_format="epoch_s")
    lines = [
        '{"@timestamp": 1717243200, "f": {"age": NaN, "note": "NaN stays text"}, "x": Infinity}',
        '{"@timestamp": 1717243200, "f": {"age": 30}, "x": -Infinity}',
        '{"@timestamp": 1717243200, "f": {"age": "NaN"}, "x": "inf"}',  # strings: kept, but no numbers
        '{"@timestamp": NaN}',
    ]
    report = store.ingest_lines(lines)
    assert (report.rows_stored, dict(report.skipped)) == (3, {MISSING_TIMESTAMP: 1})
    window = Window(NOON, NOON + timedelta(seconds=1))
    aggregates: dict[str, Aggregate] = {
        "age": Stats("f.age"),
        "no_age": Missing("f.age"),
        "no_x": Missing("x"),
        "n": Count(),
    }
    (result,) = store.evaluate([Query("q", window, aggregates)])
    assert result.groups[0].values == {
        "age": {"avg": 30.0, "min": 30.0, "max": 30.0, "sum": 30.0, "count": 1},
        "no_age": 1,
        "no_x": 2,
        "n": 3,
    }
    (notes,) = store.evaluate([Query("q", window, {"t": Terms("f.note")})])
    assert notes.groups[0].values == {"t": {"NaN stays text": 1}}
    store.close()

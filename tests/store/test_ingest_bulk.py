"""Files are stored in bulk by DuckDB (``ingest_bulk``) with the results of Python's line reader:
the same rows and documents, the same skipped lines by reason, detail and line number."""

from __future__ import annotations

import json
import random
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config.sources import TimeFormat
from watcher.store.embedded import EmbeddedStore
from watcher.store.ingest import IngestReport

ISO_TIMES = [
    "2024-06-01T12:00:00Z",
    "2024-06-01T12:00:00",
    "2024-06-01 12:00:00.5",
    "2024-06-01T12:00:00.123456Z",
    "2024-06-01T12:00:00.1234567Z",  # 7 digits: Python's reading
    "2024-06-01T12:00:00.123+05:30",
    "2024-06-01T00:10:00-01:00",
    "2024-06-01T12:00:00-00:00",
    "2024-06-01T12:00:00+0530",
    "2024-06-01T12:00:00,5",
    "2024-06-01T12:00",
    "2024-06-01",
    "2024-06-01t12:00:00z",
    "2024-06-01x12:00:00",
    "20240601T120000Z",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-06-01T24:00:00Z",
    "2024-06-01T12:00:60Z",
    "2024-13-01T12:00:00Z",
    "0999-06-01T12:00:00Z",
    "1000-01-01T00:30:00+01:00",
    "9999-06-01T12:00:00Z",
    "0000-06-01T12:00:00Z",
    " 2024-06-01T12:00:00Z",
    "2024-06-01T12:00:00Z ",
    "1717243200",
    "1717243200.5",
    " 1717243200 ",
    "soon",
    "",
]
NUMBERS: list[Any] = [
    1717243200,
    1717243200123,
    -1,
    0,
    1717243200.5,
    1717243200.0000005,
    1.5e9,
    2**53 + 1,
    2**63,
    2**64,
    10**30,
    True,
    None,
    [1],
    {"a": 1},
]
RAW_LINES = [
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": 1,}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": [1, 2 , ]}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": nan}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": -inf}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": [ Infinity]}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": NaN}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": "NaN in text"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": "Infinity in text"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "a": "x, }", "b": ":nan"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "@timestamp": "2024-06-01T13:00:00Z"}',
    '{"\\u0040timestamp": "2024-06-01T12:00:00Z", "@timestamp": "2024-06-01T13:00:00Z"}',
    '{"\\u0040timestamp": "2024-06-01T12:00:00Z"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "x": "\\ud800"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "x": "\\x"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "x": "caf\\u00e9 \u00e9 \u2028"}',
    '{"@timestamp": "\\u0032024-06-01T12:00:00Z"}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "n": 1E400}',
    '{"@timestamp": "2024-06-01T12:00:00Z", "n": 123456789012345678901234567890}',
    '{"@timestamp": "2024-06-01T12:00:00Z"}\r',
    '  {"@timestamp": "2024-06-01T12:00:00Z"}  ',
    '\ufeff{"@timestamp": "2024-06-01T12:00:00Z"}',
    '\u00a0{"@timestamp": "2024-06-01T12:00:00Z"}',
    '{"@timestamp": "2024-06-01T12:00:00Z"} x',
    '{"@timestamp": "2024-06-01T12:00:00Z"',
    '{"meta": {"ts": "2024-06-01T12:00:00Z"}, "meta.ts": 1}',
    '{"a": 1, "b": {"c": 2}}',
    "{}",
    "[1, 2]",
    '"text"',
    "12",
    "null",
    "not json",
    "",
    "   ",
    "\t",
]


def corpus(time_field: str) -> list[str]:
    def doc(value: Any, **more: Any) -> dict[str, Any]:
        if time_field == "@timestamp":
            return {"@timestamp": value, **more}
        return {"meta": {"ts": value}, **more}

    lines = [json.dumps(doc(value, i=i)) for i, value in enumerate(ISO_TIMES)]
    lines += [json.dumps(doc(value, n=i), separators=(",", ":")) for i, value in enumerate(NUMBERS)]
    lines += RAW_LINES
    rng = random.Random(13)
    for _ in range(300):  # fractions, as loggers write them: many digits, rounding at the microsecond
        seconds = rng.uniform(1e9, 2e9)
        lines.append(json.dumps(doc(round(seconds, rng.randint(0, 9)), r=1)))
        lines.append(json.dumps(doc(round(seconds * 1000, rng.randint(0, 6)), r=2)))
    return lines


def stored(store: EmbeddedStore) -> list[tuple[int, str]]:
    with store._cursor() as cur:  # a test-only peek at the rows themselves
        return cur.execute("SELECT epoch_us(ts), doc FROM logs ORDER BY ALL").fetchall()


def told(report: IngestReport) -> dict[str, Any]:
    return {
        "lines": (report.lines_read, report.rows_stored),
        "skipped": list(report.skipped.items()),  # in the order met: summaries list them so
        "first": [(reason, where.line, where.detail) for reason, where in report.first.items()],
        "fields_seen": report.fields_seen,
    }


@pytest.mark.parametrize("time_format", ["iso8601", "epoch_s", "epoch_ms"])
@pytest.mark.parametrize("time_field", ["@timestamp", "meta.ts"])
@pytest.mark.parametrize("retention", [False, True])
def test_a_file_stores_what_pythons_reader_stores(
    tmp_path: Path, time_format: TimeFormat, time_field: str, retention: bool
) -> None:
    lines = corpus(time_field)
    path = tmp_path / "app.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    kept = 1_500_000_000_000_000 if retention else None  # micros: some of the random times expire

    bulk = EmbeddedStore(tmp_path / "bulk.duckdb", time_field=time_field, time_format=time_format)
    python = EmbeddedStore(tmp_path / "python.duckdb", time_field=time_field, time_format=time_format)
    for store in (bulk, python):
        store._not_before = lambda now: kept  # type: ignore[method-assign]
    by_file = bulk.ingest_files([str(path)])
    by_lines = python.ingest_lines(path.read_bytes().split(b"\n")[:-1])

    assert told(by_file) == told(by_lines)
    assert by_file.rows_stored > 0
    assert stored(bulk) == stored(python)
    bulk.close()
    python.close()


def test_a_block_that_is_not_utf8_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    good = b'{"@timestamp": "2024-06-01T12:00:00Z"}\n'
    path.write_bytes(good + b'{"@timestamp": "2024-06-01T12:00:00Z", "x": "\xff"}\n' + good + b"\x00\n")
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    report = store.ingest_files([str(path)])
    assert told(report)["lines"] == (4, 2)
    assert told(report)["first"] == [("not_json", 2, "not JSON")]
    store.close()


def _time_texts() -> st.SearchStrategy[Any]:
    """What loggers put in a time field, well-formed or not: ISO times in several spellings and
    offsets (years 1 to 9999, so some leave the range in UTC), epoch numbers, and junk."""
    offsets = st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    )
    moments = st.builds(
        lambda moment, offset, sep, spec: moment.replace(tzinfo=timezone(offset)).isoformat(sep, spec),
        st.one_of(
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)),  # edges of the
            st.datetimes(min_value=datetime(9999, 12, 31), max_value=datetime(9999, 12, 31, 23, 59)),  # range
        ),
        offsets,
        st.sampled_from(["T", " "]),
        st.sampled_from(["seconds", "milliseconds", "microseconds", "auto"]),
    )
    naive = st.datetimes().map(lambda moment: moment.isoformat())
    numbers = st.one_of(st.integers(min_value=-(2**65), max_value=2**65), st.floats(allow_nan=False))
    return st.one_of(moments, naive, numbers, st.text(max_size=30), st.none(), st.booleans())


_LINES = st.lists(
    st.one_of(
        st.builds(lambda t, x: json.dumps({"@timestamp": t, "x": x}), _time_texts(), st.text(max_size=10)),
        st.text(max_size=60),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_LINES, time_format=st.sampled_from(["iso8601", "epoch_s", "epoch_ms"]))
def test_fuzzed_lines_never_crash_and_both_readers_agree(
    tmp_path: Path, lines: list[str], time_format: TimeFormat
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = folder / "app.jsonl"
    path.write_bytes(
        "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines).encode(
            "utf-8", "surrogatepass"
        )
        + b"\n"
    )
    bulk = EmbeddedStore(folder / "bulk.duckdb", time_format=time_format)
    python = EmbeddedStore(folder / "python.duckdb", time_format=time_format)
    by_file = bulk.ingest_files([str(path)])
    by_lines = python.ingest_lines(path.read_bytes().split(b"\n")[:-1])
    assert told(by_file) == told(by_lines)
    assert by_file.rows_stored + sum(by_file.skipped.values()) == by_file.lines_read
    assert stored(bulk) == stored(python)
    bulk.close()
    python.close()

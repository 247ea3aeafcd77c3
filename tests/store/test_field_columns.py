"""Fields kept as columns (``watcher.store.field_columns``) answer exactly what parsing the documents
answers, whatever was filled when -- rows ingested before and after a field became a column, late
rows, windows reaching past what was filled -- and the columns outlive the process."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.store.test_embedded_fusion import random_docs, random_queries
from watcher.query import Count, CountWhere, Histogram, Missing, Percentiles, Query, Stats, Terms, Window
from watcher.query_filters import Eq, Range
from watcher.store import field_columns
from watcher.store.embedded import EmbeddedStore
from watcher.store.field_columns import to_fill, uncovered
from watcher.store.ingest import NOT_JSON

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def lines(docs: list[tuple[datetime, dict[str, Any]]]) -> list[str]:
    return [json.dumps({"@timestamp": ts.isoformat(), **doc}) for ts, doc in docs]


def at(minutes: int) -> datetime:
    """A naive UTC moment, as the filled ranges are kept."""
    return datetime(2024, 6, 1, 12, 0) + timedelta(minutes=minutes)


@pytest.mark.parametrize("seed", range(3))
def test_columns_answer_what_the_documents_answer_across_ingests_and_ticks(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    documents_only = EmbeddedStore(tmp_path / "documents.duckdb", field_columns=0)
    with_columns = EmbeddedStore(tmp_path / "columns.duckdb")
    for _ in range(3):  # each batch is spread over the whole hour: late rows land in filled ranges
        batch = lines(random_docs(rng, 300))
        assert documents_only.ingest_lines(batch).rows_stored == with_columns.ingest_lines(batch).rows_stored
        queries = random_queries(rng, 30)
        assert with_columns.evaluate(queries) == documents_only.evaluate(queries)
        assert with_columns.evaluate_unfused(queries) == documents_only.evaluate(queries)
    documents_only.close()
    with_columns.close()


def test_a_long_range_is_filled_in_pieces_with_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(field_columns, "FILL_ROWS", 40)  # 600 rows: about 15 transactions
    docs = lines(random_docs(random.Random(5), 600))
    documents_only = EmbeddedStore(tmp_path / "documents.duckdb", field_columns=0)
    with_columns = EmbeddedStore(tmp_path / "columns.duckdb")
    documents_only.ingest_lines(docs)
    with_columns.ingest_lines(docs)
    queries = [replace(q, window=Window(T0 - timedelta(hours=1), T0 + timedelta(hours=2))) for q in
               random_queries(random.Random(5), 20)]  # fmt: skip
    assert with_columns.evaluate(queries) == documents_only.evaluate(queries)
    documents_only.close()
    with_columns.close()


def test_a_field_read_once_is_answered_from_its_column_afterwards(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    store.ingest_lines(lines([(T0 + timedelta(seconds=i), {"service": "api"}) for i in range(3)]))
    query = Query("q", Window(T0, T0 + timedelta(minutes=1)), {"services": Terms("service", 5)})
    (first,) = store.evaluate([query])
    with store._cursor() as cur:  # the documents no longer say anything: only the column does
        cur.execute("""UPDATE logs SET doc = '{}'""")
    assert store.evaluate([query]) == [first]
    assert dict(first.groups[0].values["services"]) == {"api": 3}  # type: ignore[arg-type]
    store.close()


def test_columns_and_what_they_hold_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "logs.duckdb"
    docs = [(T0 + timedelta(seconds=i), {"latency_ms": i, "service": "api"}) for i in range(60)]
    query = Query(
        "q", Window(T0, T0 + timedelta(minutes=2)), {"n": Count(), "p": Percentiles("latency_ms", (50.0,))}
    )
    store = EmbeddedStore(path)
    store.ingest_lines(lines(docs[:30]))
    store.evaluate([query])  # latency_ms becomes a column, filled for the rows stored so far
    store.close()
    store = EmbeddedStore(path)
    store.ingest_lines(lines(docs[30:]))  # filled as they are stored
    (result,) = store.evaluate([query])
    assert dict(result.groups[0].values) == {"n": 60, "p": {50.0: 29.5}}
    store.close()


def test_fields_over_the_limit_are_read_from_the_documents(tmp_path: Path) -> None:
    docs = lines(random_docs(random.Random(9), 300))
    documents_only = EmbeddedStore(tmp_path / "documents.duckdb", field_columns=0)
    two_columns = EmbeddedStore(tmp_path / "two.duckdb", field_columns=2)
    documents_only.ingest_lines(docs)
    two_columns.ingest_lines(docs)
    for seed in range(3):
        queries = random_queries(random.Random(seed), 30)
        assert two_columns.evaluate(queries) == documents_only.evaluate(queries)
    documents_only.close()
    two_columns.close()


def test_documents_duckdb_refuses_are_skipped_when_fields_are_columns(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    query = Query("q", Window(T0, T0 + timedelta(minutes=1)), {"x": Terms("x", 5)})
    store.evaluate([query])
    report = store.ingest_lines(
        [
            '{"@timestamp": "2024-06-01T12:00:00Z", "x": "\\ud800"}',
            '{"@timestamp": "2024-06-01T12:00:00Z", "x": "a"}',
        ]
    )
    assert (report.rows_stored, dict(report.skipped)) == (1, {NOT_JSON: 1})
    (result,) = store.evaluate([query])
    assert dict(result.groups[0].values["x"]) == {"a": 1}  # type: ignore[arg-type]
    store.close()


UNCOVERED = {
    "nothing filled": ([(at(0), at(10))], [], [(at(0), at(10))]),
    "all filled": ([(at(0), at(10))], [(at(-5), at(20))], []),
    "filled in the middle": ([(at(0), at(10))], [(at(2), at(4))], [(at(0), at(2)), (at(4), at(10))]),
    "filled from a point on": ([(at(0), at(10))], [(at(5), datetime.max)], [(at(0), at(5))]),
    "touching is filled": ([(at(0), at(10))], [(at(0), at(5)), (at(5), at(10))], []),
    "two ranges": ([(at(0), at(2)), (at(8), at(10))], [(at(1), at(9))], [(at(0), at(1)), (at(9), at(10))]),
}


@pytest.mark.parametrize(("ranges", "filled", "missing"), UNCOVERED.values(), ids=UNCOVERED.keys())
def test_uncovered_is_what_the_ranges_need_beyond_the_filled_spans(
    ranges: list[Any], filled: list[Any], missing: list[Any]
) -> None:
    assert uncovered(ranges, filled) == missing


def test_filling_reads_ahead_by_the_range_up_to_what_is_filled() -> None:
    # a tick over [0, 60) with rows filled from 100 on: fill [0, 100), not one minute per tick
    assert to_fill([(at(0), at(60))], [(at(100), datetime.max)]) == [(at(0), at(100))]
    assert to_fill([(at(0), at(60))], []) == [(at(0), at(120))]
    assert to_fill([(at(0), at(60))], [(at(-10), at(59))]) == [(at(59), at(120))]
    assert to_fill([(at(0), at(60))], [(at(-10), at(60))]) == []


def test_a_field_that_cannot_be_filled_is_read_from_the_documents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    early = [(T0 + timedelta(seconds=i), {"service": "api"}) for i in range(3)]
    store.ingest_lines(lines([*early, (T0 + timedelta(hours=2), {"service": "api"})]))
    later = Window(T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=1))
    # service becomes a column, filled from the newest row on: not for the early rows
    store.evaluate([Query("later", later, {"n": Count()}, Eq("service", "api"))])
    query = Query("q", Window(T0, T0 + timedelta(minutes=1)), {"services": Terms("service", 5)})
    with store._cursor() as other:  # another writer holds the early rows of the column: filling conflicts
        other.begin()
        other.execute("UPDATE logs SET field_0 = 'other' WHERE ts < $1", [at(60)])
        (result,) = store.evaluate([query])
        other.rollback()
    assert dict(result.groups[0].values["services"]) == {"api": 3}  # type: ignore[arg-type]
    assert "field columns not updated, fields are read from the documents" in caplog.text
    assert store.evaluate([query]) == [result]
    store.close()


def test_two_stores_open_on_one_file_fill_each_others_columns(tmp_path: Path) -> None:
    reader, writer = EmbeddedStore(tmp_path / "logs.duckdb"), EmbeddedStore(tmp_path / "logs.duckdb")
    query = Query("q", Window(T0, T0 + timedelta(minutes=1)), {"services": Terms("service", 5)})
    reader.evaluate([query])  # service becomes a column; the writer was opened before
    writer.ingest_lines(lines([(T0 + timedelta(seconds=i), {"service": "api"}) for i in range(3)]))
    (result,) = reader.evaluate([query])
    assert dict(result.groups[0].values["services"]) == {"api": 3}  # type: ignore[arg-type]
    reader.close()
    writer.close()


NOT_NUMBERS = ["abc", "NaN", "inf", "-Infinity", 1e400, True, None, {"a": 1}, [1], ""]


def test_a_numeric_field_is_a_double_column_whose_non_numbers_are_skipped_as_before(tmp_path: Path) -> None:
    numbers = [1.5, 7, "12", " 30 ", -4e2, 0]
    docs = [(T0 + timedelta(seconds=i), {"x": x}) for i, x in enumerate([*numbers, *NOT_NUMBERS])]
    docs.append((T0 + timedelta(seconds=30), {"y": 1}))  # x absent
    window = Window(T0, T0 + timedelta(minutes=1))
    aggregates = {
        "bins": Histogram("x", (0.0, 10.0)),
        "stats": Stats("x"),
        "numbers": CountWhere(Range("x", gte=-1000.0)),
        "missing": Missing("x"),
    }
    query = Query("q", window, aggregates)
    documents_only = EmbeddedStore(tmp_path / "documents.duckdb", field_columns=0)
    with_columns = EmbeddedStore(tmp_path / "columns.duckdb")
    for store in (documents_only, with_columns):
        store.ingest_lines(lines(docs[:8]))
        store.evaluate([query])  # x becomes a DOUBLE column (and a text one: Missing reads text)
        store.ingest_lines(lines(docs[8:]))  # filled as they are stored
    (result,) = with_columns.evaluate([query])
    assert [result] == documents_only.evaluate([query])
    values = result.groups[0].values
    assert values["bins"] == [1, 3, 2]  # -400 | 0, 1.5, 7 | 12, 30: every non-number is left out
    assert values["stats"] == {"avg": -349.5 / 6, "min": -400.0, "max": 30.0, "sum": -349.5, "count": 6}
    assert values["numbers"] == 6
    assert values["missing"] == 3  # absent, null, 1e400 (stored as null): a string is not missing
    with with_columns._cursor() as cur:
        types = cur.execute(
            "SELECT column_type FROM (DESCRIBE logs) WHERE column_name LIKE 'field_%'"
        ).fetchall()
        cur.execute("UPDATE logs SET doc = '{}'")  # the documents no longer say anything: only the columns do
    assert sorted(t for (t,) in types) == ["DOUBLE", "VARCHAR"]
    assert with_columns.evaluate([query]) == [result]
    documents_only.close()
    with_columns.close()


def test_a_store_whose_columns_were_all_text_gets_its_numbers_typed(tmp_path: Path) -> None:
    path = tmp_path / "logs.duckdb"
    store = EmbeddedStore(path)
    store.ingest_lines(
        lines([(T0 + timedelta(seconds=i), {"x": x}) for i, x in enumerate([1, 5, "n/a", 20])])
    )
    store.close()
    with duckdb.connect(str(path)) as con:  # the registry as it was before DOUBLE columns: x kept as text
        con.execute("DROP TABLE field_columns")
        con.execute(
            'CREATE TABLE field_columns (pointer VARCHAR NOT NULL, "column" VARCHAR NOT NULL, '
            "filled_from TIMESTAMP NOT NULL, filled_to TIMESTAMP)"
        )
        con.execute("ALTER TABLE logs ADD COLUMN field_0 VARCHAR")
        con.execute("UPDATE logs SET field_0 = json_extract_string(doc, '/x')")
        con.execute("INSERT INTO field_columns VALUES ('/x', 'field_0', '0001-01-01', NULL)")
    store = EmbeddedStore(path)
    aggregates = {"bins": Histogram("x", (10.0,)), "missing": Missing("x"), "terms": Terms("x", 5)}
    (result,) = store.evaluate([Query("q", Window(T0, T0 + timedelta(minutes=1)), aggregates)])
    values = result.groups[0].values
    assert (values["bins"], values["missing"], dict(values["terms"])) == (
        [2, 1],
        0,
        {"1": 1, "5": 1, "n/a": 1, "20": 1},
    )  # type: ignore[arg-type]
    with store._cursor() as cur:
        rows = cur.execute('SELECT pointer, "column", number FROM field_columns ORDER BY ALL').fetchall()
    assert rows == [("/x", "field_0", False), ("/x", "field_1", True)]
    store.close()


def test_columns_kept_before_a_backlog_are_filled_as_it_is_ingested(tmp_path: Path) -> None:
    # What a backtest does: its rules' fields get columns first, so the first tick fills nothing.
    rng = random.Random(11)
    log = tmp_path / "app.jsonl"
    log.write_text("".join(line + "\n" for line in lines(random_docs(rng, 500))))
    queries = random_queries(rng, 30)
    documents_only = EmbeddedStore(tmp_path / "documents.duckdb", field_columns=0)
    kept = EmbeddedStore(tmp_path / "kept.duckdb")
    kept.keep_columns(queries)
    documents_only.ingest_files([str(log)])
    kept.ingest_files([str(log)])
    with kept._cursor() as cur:  # a test-only look at the registry before any tick
        registry = cur.execute('SELECT "column", filled_from, filled_to FROM field_columns').fetchall()
        columns = [column for column, _, _ in registry]
        where = " OR ".join(f"{column} IS NOT NULL" for column in columns)
        filled = cur.execute(f"SELECT count(*) FROM logs WHERE {where}").fetchall()[0][0]
    assert registry
    assert all((lo, hi) == (datetime.min, None) for _, lo, hi in registry)
    assert filled > 0
    assert kept.evaluate(queries) == documents_only.evaluate(queries)
    documents_only.close()
    kept.close()

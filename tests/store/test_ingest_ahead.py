"""A file of many chunks, each classified on a second thread while the one before is stored
(``ingest_ahead``), is stored as Python's line reader stores it: the same rows, field columns,
skipped lines and line numbers, in time order within each chunk -- with or without reading ahead."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.store.test_embedded_fusion import random_docs, random_queries
from tests.store.test_field_columns import lines
from tests.store.test_ingest_bulk import corpus, stored, told
from watcher.store.embedded import EmbeddedStore
from watcher.store.field_columns import FieldColumn
from watcher.store.ingest import IngestReport, LineReader, ParsedLines
from watcher.store.ingest_bulk import classify_block, drop_classified, insert_rows


def mixed_log(path: Path) -> None:
    """Random documents in time order, shuffled a little, with the bulk tests' corpus (bad
    lines, odd times) spread through, and a line that is not UTF-8 (its chunk is Python's)."""
    rng = random.Random(5)
    good = lines(random_docs(rng, 1500))
    for i in range(0, len(good) - 1, 7):
        good[i], good[i + 1] = good[i + 1], good[i]
    odd = corpus("@timestamp")
    text = [line.encode("utf-8", "surrogatepass") for line in good]
    for i, line in enumerate(odd):
        text.insert(rng.randrange(len(text)), line.encode("utf-8", "surrogatepass").replace(b"\n", b" "))
        if i == 40:
            text.insert(len(text) // 2, b'{"@timestamp": "2026-01-05T09:00:00Z", "x": "\xff"}')
    path.write_bytes(b"\n".join(text) + b"\n")


def counted(report: IngestReport) -> dict[str, Any]:
    return told(report) | {"skipped": sorted(report.skipped.items())}


def column_values(store: EmbeddedStore) -> list[tuple[object, ...]]:
    with store._cursor() as cur:  # a test-only peek at the field columns
        names = [row[0] for row in cur.execute('SELECT "column" FROM field_columns ORDER BY ALL').fetchall()]
        return cur.execute(f"SELECT doc, {', '.join(names)} FROM logs ORDER BY ALL").fetchall()


@pytest.mark.parametrize("read_ahead", [True, False])
def test_many_chunks_store_what_pythons_reader_stores(tmp_path: Path, read_ahead: bool) -> None:
    log = tmp_path / "app.jsonl"
    mixed_log(log)
    queries = random_queries(random.Random(3), 20)
    chunked = EmbeddedStore(tmp_path / "chunked.duckdb", read_chunk=16 * 1024, read_ahead=read_ahead)
    python = EmbeddedStore(tmp_path / "python.duckdb")
    kept = 1_500_000_000_000_000  # micros: some of the corpus' times expire
    for store in (chunked, python):
        store.keep_columns(queries)
        store._not_before = lambda now: kept  # type: ignore[method-assign]

    by_file = chunked.ingest_files([str(log)])
    by_lines = python.ingest_lines(log.read_bytes().split(b"\n")[:-1])

    # Reasons by count, not in the order met: a document DuckDB's parser refuses is counted as
    # not JSON after its own chunk's reasons, so chunks may list reasons in another order (as before).
    assert counted(by_file) == counted(by_lines)
    assert by_file.rows_stored > 1500
    assert stored(chunked) == stored(python)
    assert column_values(chunked) == column_values(python)
    assert chunked.evaluate(queries) == python.evaluate(queries)
    assert chunked.file_cursor(log) is not None
    assert chunked.ingest_files([str(log)]).rows_stored == 0  # every chunk's cursor was saved
    chunked.close()
    python.close()


def test_rows_of_a_chunk_are_stored_in_time_order(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    times = [f"2026-01-05T09:00:{second:02d}Z" for second in (5, 1, 3, 1, 0, 9)]
    log.write_text("".join(json.dumps({"@timestamp": t, "n": n}) + "\n" for n, t in enumerate(times)))
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    store.ingest_files([str(log)])
    with store._cursor() as cur:
        order = cur.execute("SELECT doc::JSON->>'n' FROM logs ORDER BY rowid").fetchall()
    assert [int(n) for (n,) in order] == [4, 1, 3, 2, 0, 5]  # by time, then by line
    store.close()


def test_a_column_added_after_a_chunk_was_classified_is_filled_from_its_documents(tmp_path: Path) -> None:
    # Another store on the same file may add a field column between two chunks' transactions.
    con = duckdb.connect(str(tmp_path / "logs.duckdb"))
    con.execute("CREATE TABLE logs (ts TIMESTAMP, doc VARCHAR, field_0 VARCHAR, field_1 DOUBLE)")
    block = b'{"@timestamp": "2026-01-05T09:00:00Z", "a": "x", "b": 2.5}\n'
    block += b'{"@timestamp": "2026-01-05T09:00:01Z"}\n'
    reader = LineReader("@timestamp", "iso8601", None)
    known = [FieldColumn("/a", "field_0", [])]
    classified = classify_block(con.cursor(), block, reader, (None, 1), known)
    now = [*known, FieldColumn("/b", "field_1", [], number=True)]
    report = insert_rows(con, ParsedLines(), now, bulk=classified)
    drop_classified(con, classified)
    assert report.rows_stored == 2
    assert con.execute("SELECT field_0, field_1 FROM logs ORDER BY ts").fetchall() == [
        ("x", 2.5),
        (None, None),
    ]
    con.close()

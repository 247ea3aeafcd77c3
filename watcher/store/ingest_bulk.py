"""A block of JSON lines stored by DuckDB in bulk, with the Python reader's results exactly.

Reading every line in Python (``ingest.parse_lines``: ``json``, ``datetime.fromisoformat``, a list
of rows handed to DuckDB) cost about 17 µs a line: 9 s for a 3-day backtest's 518k lines. Here
the block goes to DuckDB as one string; DuckDB splits it and finds, with its own JSON parser, the
lines whose row is certain: a JSON object as strict as Python reads it, the time field once at its
top level, and a time both parsers read alike -- ``YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|±HH:MM]``
(years 1000 to 9998), or, with ``epoch_s``/``epoch_ms``, a JSON number within those years. Those
rows are inserted from DuckDB's side without coming back to Python. Every other line (none in a
file of well-formed logs) is read by ``parse_lines``' reader as before: skipped lines keep their
reason, detail and line number, NaN is still rewritten as null.

DuckDB's parser is laxer than Python's in two ways (trailing commas; ``nan``/``inf`` literals in
any case), so a line where either could be is left to Python; so is a line with ``NaN`` or
``Infinity`` anywhere (Python stores it rewritten), one not starting with ``{`` and ending with
``}`` (Python strips whitespace first), and a whole block that is not UTF-8 or holds a NUL.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from watcher.store.field_columns import FieldColumn
from watcher.store.ingest import (
    EXPIRED,
    EXPIRED_DETAIL,
    MICROS_PER_UNIT,
    NOT_JSON,
    IngestReport,
    LineReader,
    ParsedLines,
    Rejection,
    epoch_micros,
    parse_numbered,
)
from watcher.store.sql import json_paths

_LAX = r",[ \t\r]*[}\]]|[:,\[][ \t\r]*-?([iI]|[nN][^u])"
"""Where DuckDB's JSON parser accepts what Python's refuses: a trailing comma, a ``nan``/``inf``
literal. Matches inside strings too: such a line is merely read by Python."""
_ISO = (
    r"[1-9][0-9]{3}-[01][0-9]-[0-3][0-9][T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
)
"""The timestamps read in bulk (DuckDB's ``TIMESTAMPTZ`` cast in UTC); ``datetime.fromisoformat``
reads each the same way. Others (``2024-06-01T12:00``, a week date, a comma before the fraction,
...) are read by Python."""
_LOW = epoch_micros(datetime(1900, 1, 1, tzinfo=UTC))
_HIGH = epoch_micros(datetime(9999, 1, 1, tzinfo=UTC))
"""Times read in bulk lie in these years: no calendar reform, no overflow at 9999 with an offset."""
CHUNK_TABLE = "ingest_chunk"


def store_block(
    cur: duckdb.DuckDBPyConnection,
    block: bytes,
    reader: LineReader,
    where: tuple[str | None, int],
    fields: Sequence[FieldColumn],
) -> IngestReport:
    """Insert the rows of ``block`` (whole lines, each ending with a newline) into ``logs``,
    with every field column filled, inside the caller's transaction; the report counts them.
    ``where`` is the file and the number of the block's first line."""
    file, first_line = where
    text = _decoded(block)
    if text is None:
        lines = block.split(b"\n")[:-1]
        parsed = parse_numbered(enumerate(lines, first_line), reader, file)
        return insert_rows(cur, parsed, fields)
    cur.execute("SET TimeZone = 'UTC'")  # a time without an offset is UTC, as Python reads it
    cur.execute(classify_sql(reader), [text, first_line])
    del text
    slow = cur.execute(f"SELECT n, line FROM {CHUNK_TABLE} WHERE us IS NULL ORDER BY n").fetchall()
    parsed = parse_numbered(((n, line.encode()) for n, line in slow), reader, file)
    del slow
    cutoff = reader.not_before
    row = cur.execute(
        f"SELECT count(us) FILTER (us >= $1), count(us) FILTER (us < $1), min(n) FILTER (us < $1) "
        f"FROM {CHUNK_TABLE}",
        [cutoff if cutoff is not None else -(2**63)],
    ).fetchone()
    bulk, expired, first_expired = row if row else (0, 0, None)
    report = parsed.report
    report.lines_read += bulk + expired
    if expired:
        _expired(report, expired, Rejection(file, first_expired, EXPIRED_DETAIL))
    insert_rows(cur, parsed, fields, bulk=bulk, cutoff=cutoff)
    cur.execute(f"DROP TABLE {CHUNK_TABLE}")
    return report


def _expired(report: IngestReport, count: int, first: Rejection) -> None:
    """Count expired rows found in bulk among those Python skipped, each reason in the order of
    its first skipped line, as Python's reader would have met them."""
    earlier = report.first.get(EXPIRED)
    if earlier is not None and earlier.line < first.line:
        first = earlier
    report.first[EXPIRED] = first
    report.skipped[EXPIRED] += count
    report.first = dict(sorted(report.first.items(), key=lambda item: item[1].line))
    others = [reason for reason in report.skipped if reason not in report.first]
    report.skipped = Counter({reason: report.skipped[reason] for reason in [*report.first, *others]})


def _decoded(block: bytes) -> str | None:
    """The block as text for DuckDB, or ``None`` when Python must read it line by line: a line
    that is not UTF-8 is skipped alone, and a NUL is no JSON."""
    if b"\x00" in block:
        return None
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return None


def classify_sql(reader: LineReader) -> str:
    """The statement making ``ingest_chunk(n, line, us)`` from the block (``$1``) and its first
    line's number (``$2``): every line but empty ones, ``us`` its row's time when it is certain,
    NULL when Python reads the line. Each function costs about 0.1 s per 500k lines: the common
    line goes through two regular expressions and two JSON parses."""
    key = reader.time_field
    pointer = _sql_text("/" + key.replace("~", "~0").replace("/", "~1"))
    literal = json.dumps(key, ensure_ascii=False)
    # Not Python's: not an object without blanks around it, NaN or Infinity anywhere (Python
    # rewrites the document), DuckDB's laxness, or the time field twice (Python reads the last,
    # DuckDB the first). A key written with escapes is not its literal: those lines list their keys.
    refused = f"^[^{{]|[^}}]$|NaN|Infinity|{re.escape(literal)}.*{re.escape(literal)}|{_LAX}"
    escaped = "\\" if any(c in key for c in '"\\/') or not key.isprintable() else "\\u"
    strict = f"NOT regexp_matches(line, {_sql_text(refused)}) AND json_valid(line)"
    once = f"len(list_filter(json_keys(line), lambda k: k = {_sql_text(key)})) = 1"
    unit = MICROS_PER_UNIT.get(reader.time_format)
    # Numbers are Python's to refuse without a unit: then only strings, extracted as text.
    extract = "json_extract_string" if unit is None else "json_extract"
    value = (  # CASE, not AND or OR: DuckDB evaluates every operand of those, json_keys needs JSON
        f"CASE WHEN {strict} THEN (CASE WHEN NOT contains(line, {_sql_text(escaped)}) "
        f"THEN {extract}(line, {pointer}) WHEN {once} THEN {extract}(line, {pointer}) END) END"
    )
    if unit is None:
        time = f"CASE WHEN regexp_full_match(v, '{_ISO}') THEN epoch_us(try_cast(v AS TIMESTAMPTZ)) END"
    else:
        time = _epoch_sql(unit)
    return f"""
CREATE OR REPLACE TEMP TABLE {CHUNK_TABLE} AS
WITH lines AS (
    SELECT CAST(n AS BIGINT) + $2 - 1 AS n, line
    FROM unnest(string_split($1, chr(10))) WITH ORDINALITY AS t(line, n) WHERE line <> ''
), valued AS (SELECT n, line, {value} AS v FROM lines)
SELECT n, line, CASE WHEN us BETWEEN {_LOW} AND {_HIGH} THEN us END AS us FROM (
    SELECT n, line, {time} AS us FROM valued
)"""


def _epoch_sql(unit: int) -> str:
    """A row's epoch microseconds from ``v``, its time field's JSON, with ``epoch_s`` or
    ``epoch_ms``: a string as ISO 8601 as above, an int times the unit exactly, a float times the
    unit rounded half to even, as ``parse_timestamp``; NULL where Python must decide (a numeric
    string, among others)."""
    integer = (
        f"(CASE WHEN try_cast(v AS BIGINT) BETWEEN {_LOW // unit} AND {_HIGH // unit} "
        f"THEN try_cast(v AS BIGINT) * {unit} END)"
    )
    return (
        f"CASE json_type(v) WHEN 'VARCHAR' THEN (CASE WHEN regexp_full_match(v ->> '$', '{_ISO}') "
        f"THEN epoch_us(try_cast(v ->> '$' AS TIMESTAMPTZ)) END) "
        f"WHEN 'BIGINT' THEN {integer} WHEN 'UBIGINT' THEN {integer} "
        f"WHEN 'DOUBLE' THEN (CASE WHEN abs(CAST(v AS DOUBLE)) < {2**62 // unit} "
        f"THEN CAST(round_even(CAST(v AS DOUBLE) * {unit}, 0) AS BIGINT) END) END"
    )


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def insert_rows(
    cur: duckdb.DuckDBPyConnection,
    parsed: ParsedLines,
    fields: Sequence[FieldColumn],
    *,
    bulk: int = 0,
    cutoff: int | None = None,
) -> IngestReport:
    """Insert ``parsed``'s rows, and with ``bulk`` those of ``ingest_chunk`` not before
    ``cutoff``, in time order (tighter zone maps, so windows skip more row groups), with every
    field column filled; sets ``rows_stored``. Documents DuckDB's JSON parser refuses are dropped,
    counted as not JSON, so they can never fail a query later.

    Python's rows go in as two list parameters: no NumPy or pandas in the daemon's memory."""
    report = parsed.report
    if not parsed.docs and not bulk:
        return report
    columns = "".join(f", {field.column}" for field in fields)
    values = "".join(f", {field.value(f'b._s[{i}]')}" for i, field in enumerate(fields, 1))
    paths = json_paths(field.pointer for field in fields)
    extract = f", json_extract_string(doc, {paths}) AS _s" if fields else ""
    rows = "SELECT unnest($1::BIGINT[]) AS us, unnest($2::VARCHAR[]) AS doc, 0 AS n"
    rows = f"SELECT * FROM ({rows}) WHERE json_valid(doc)"
    if bulk:
        rows += f" UNION ALL SELECT us, line, n FROM {CHUNK_TABLE} WHERE us >= $3"
    row = cur.execute(
        f"INSERT INTO logs (ts, doc{columns}) SELECT make_timestamp(b.us), b.doc{values} "
        f"FROM (SELECT *{extract} FROM ({rows})) AS b ORDER BY b.us, b.n",
        [parsed.micros, parsed.docs, *([cutoff if cutoff is not None else -(2**63)] if bulk else [])],
    ).fetchone()
    report.rows_stored = int(row[0]) if row else 0
    if rejected := len(parsed.docs) + bulk - report.rows_stored:
        report.skipped[NOT_JSON] += rejected  # DuckDB's JSON parser refused them
    return report

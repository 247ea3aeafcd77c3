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

import dataclasses
import json
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
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
SCRATCH = "watcher_ingest"
"""An in-memory database of the store's DuckDB instance holding blocks classified ahead of their
transaction (``classify_block``): every cursor of the instance sees it, unlike a TEMP table, so
the next block is classified on another thread while the current one is inserted and committed."""


@dataclass
class Classified:
    """A block read ahead of its transaction: the rows DuckDB found certain in ``table`` (time
    order, each field column's value computed for ``fields``), the lines Python must read, and the
    counts of rows to insert and of expired ones. ``table`` is ``None`` when Python reads every
    line (a block that is not UTF-8 or holds a NUL)."""

    where: tuple[str | None, int]
    table: str | None = None
    fields: tuple[FieldColumn, ...] = ()
    slow: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)
    bulk: int = 0
    expired: int = 0
    first_expired: int | None = None


def classify_block(
    cur: duckdb.DuckDBPyConnection,
    block: bytes,
    reader: LineReader,
    where: tuple[str | None, int],
    fields: Sequence[FieldColumn],
) -> Classified:
    """Split ``block`` (whole lines, each ending with a newline) into the rows DuckDB stores in
    bulk, kept in a table of ``SCRATCH``, and the lines left to Python's reader. Runs outside the
    store's transaction (on its own cursor, possibly its own thread); ``where`` is the file and
    the number of the block's first line."""
    text = _decoded(block)
    if text is None:
        lines = block.split(b"\n")[:-1]
        return Classified(where, slow=list(enumerate(lines, where[1])))
    cur.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH}")
    cur.execute("SET TimeZone = 'UTC'")  # a time without an offset is UTC, as Python reads it
    table = f"{SCRATCH}.chunk_{uuid.uuid4().hex}"
    cur.execute(classify_sql(reader, table, fields), [text, where[1]])
    del text
    found = Classified(where, table, tuple(fields))
    try:
        slow = cur.execute(f"SELECT n, line FROM {table} WHERE us IS NULL ORDER BY n").fetchall()
        found.slow = [(n, line.encode()) for n, line in slow]
        cutoff = reader.not_before
        row = cur.execute(
            f"SELECT count(us) FILTER (us >= $1), count(us) FILTER (us < $1), min(n) FILTER (us < $1) "
            f"FROM {table}",
            [cutoff if cutoff is not None else -(2**63)],
        ).fetchone()
    except BaseException:
        drop_classified(cur, found)
        raise
    found.bulk, found.expired, found.first_expired = row if row else (0, 0, None)
    return found


def drop_classified(cur: duckdb.DuckDBPyConnection, classified: Classified) -> None:
    """Free a classified block's table (outside the store's transaction: a transaction writes to
    one database only)."""
    if classified.table is not None:
        cur.execute(f"DROP TABLE IF EXISTS {classified.table}")


def store_classified(
    cur: duckdb.DuckDBPyConnection, classified: Classified, reader: LineReader, fields: Sequence[FieldColumn]
) -> IngestReport:
    """Insert a classified block's rows into ``logs`` with every field column filled, inside the
    caller's transaction; the report counts them as Python's reader would."""
    file, _ = classified.where
    parsed = parse_numbered(classified.slow, reader, file)
    report = parsed.report
    report.lines_read += classified.bulk + classified.expired
    if classified.expired:
        first = classified.first_expired if classified.first_expired is not None else 0
        _expired(report, classified.expired, Rejection(file, first, EXPIRED_DETAIL))
    bulk = classified if classified.bulk else None
    return insert_rows(cur, parsed, fields, bulk=bulk, cutoff=reader.not_before)


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


def classify_sql(reader: LineReader, table: str, fields: Sequence[FieldColumn]) -> str:
    """The statement making ``table(n, line, us, c1, ...)`` from the block (``$1``) and its first
    line's number (``$2``): every line but empty ones, ``us`` its row's time when it is certain,
    NULL when Python reads the line, ``c1, ...`` the values of ``fields`` of its row; in the
    order rows are stored (time, then line). Each function costs about 0.1 s per 500k lines: the common
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
    timed = f"""
WITH lines AS (
    SELECT CAST(n AS BIGINT) + $2 - 1 AS n, line
    FROM unnest(string_split($1, chr(10))) WITH ORDINALITY AS t(line, n) WHERE line <> ''
), valued AS (SELECT n, line, {value} AS v FROM lines)
SELECT n, line AS doc, CASE WHEN us BETWEEN {_LOW} AND {_HIGH} THEN us END AS us FROM (
    SELECT n, line, {time} AS us FROM valued
)"""
    rows = _with_values(f"SELECT us, doc, n FROM ({timed})", fields)
    return f"CREATE TABLE {table} AS SELECT n, doc AS line, us{_values(fields)} FROM ({rows}) ORDER BY us, n"


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
    bulk: Classified | None = None,
    cutoff: int | None = None,
) -> IngestReport:
    """Insert ``parsed``'s rows, and with ``bulk`` those of its table not before ``cutoff``, in
    time order (tighter zone maps, so windows skip more row groups), with every field column
    filled; sets ``rows_stored``. Documents DuckDB's JSON parser refuses are dropped, counted as
    not JSON, so they can never fail a query later.

    Python's rows go in as two list parameters: no NumPy or pandas in the daemon's memory. The
    bulk rows come sorted, their field values computed when classified (for the same columns:
    unless another store on the file added one since, they are computed here)."""
    report = parsed.report
    count = bulk.bulk if bulk is not None else 0
    if not parsed.docs and not count:
        return report
    parts: list[str] = []
    params: list[object] = []
    if parsed.docs:
        rows = "SELECT unnest($1::BIGINT[]) AS us, unnest($2::VARCHAR[]) AS doc, 0 AS n"
        parts.append(_with_values(f"SELECT * FROM ({rows}) WHERE json_valid(doc)", fields))
        params += [parsed.micros, parsed.docs]
    if bulk is not None and count:
        params.append(cutoff if cutoff is not None else -(2**63))
        rows = f"SELECT us, line AS doc, n{{}} FROM {bulk.table} WHERE us >= ${len(params)}"
        if _layout(bulk.fields) == _layout(fields):
            parts.append(rows.format(_values(fields)))
        else:
            parts.append(_with_values(rows.format(""), fields))
    columns = "".join(f", {field.column}" for field in fields)
    order = " ORDER BY us, n" if parsed.docs else ""  # bulk rows alone are in order already
    row = cur.execute(
        f"INSERT INTO logs (ts, doc{columns}) SELECT make_timestamp(us), doc{_values(fields)} "
        f"FROM ({' UNION ALL '.join(parts)}){order}",
        params,
    ).fetchone()
    report.rows_stored = int(row[0]) if row else 0
    if rejected := len(parsed.docs) + count - report.rows_stored:
        report.skipped[NOT_JSON] += rejected  # DuckDB's JSON parser refused them
    return report


def _with_values(rows: str, fields: Sequence[FieldColumn]) -> str:
    """``rows`` (``us, doc, n``) with each field column's value from ``doc`` as ``c1, c2, ...``:
    one ``json_extract_string`` of all their paths."""
    if not fields:
        return rows
    values = ", ".join(f"{field.value(f'_s[{i}]')} AS c{i}" for i, field in enumerate(fields, 1))
    paths = json_paths(field.pointer for field in fields)
    extract = f"CASE WHEN us IS NOT NULL THEN json_extract_string(doc, {paths}) END"  # not a skipped line's
    return f"SELECT us, doc, n, {values} FROM (SELECT *, {extract} AS _s FROM ({rows}))"


def _values(fields: Sequence[FieldColumn]) -> str:
    return "".join(f", c{i}" for i in range(1, len(fields) + 1))


def _layout(fields: Sequence[FieldColumn]) -> list[tuple[str, str, bool]]:
    return [(field.pointer, field.column, field.number) for field in fields]

"""JSON-lines ingestion for the embedded store: line parsing, timestamps, and file cursors.

Pure parts only: turning lines into ``(timestamp, document)`` rows with a count of what was
skipped and why, and deciding where to resume reading a file. The DuckDB side (tables,
transactions) lives in ``embedded.py``. A bad line never stops ingestion: it is counted under
its reason (``NOT_JSON``, ``MISSING_TIMESTAMP``, ...), the first one per reason kept with its
file and line number, and dropped; ``rejections.py`` logs and summarises them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from watcher.config.sources import TimeFormat

NOT_JSON = "not_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_TIMESTAMP = "missing_timestamp"
BAD_TIMESTAMP = "bad_timestamp"
AMBIGUOUS_TIMESTAMP = "ambiguous_timestamp"
EXPIRED = "expired"
"""Why a line was skipped: the ``reason`` label of ``watcher_ingest_rejected_total``."""
EXPIRED_DETAIL = "older than the retention"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
MICROS_PER_UNIT = {"epoch_s": 1_000_000, "epoch_ms": 1_000}
FIELDS_SEEN_MAX = 30
HEAD_BYTES = 256
"""How much of a file's start is fingerprinted to tell a rotated file from the one we read."""


@dataclass(frozen=True)
class Rejection:
    """Where a line was skipped (``file`` is ``None`` for lines given directly) and why, in words."""

    file: str | None
    line: int
    detail: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file else f"line {self.line}"


@dataclass
class IngestReport:
    """What one ingestion pass did. ``lines_read == rows_stored + sum(skipped.values())``;
    blank lines are ignored and not counted. ``first`` keeps the first skipped line per reason,
    ``fields_seen`` the top-level fields of lines without the time field (at most 30 names)."""

    lines_read: int = 0
    rows_stored: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    files: int = 0
    first: dict[str, Rejection] = field(default_factory=dict)
    fields_seen: set[str] = field(default_factory=set)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def reject(self, reason: str, where: Rejection | None = None) -> None:
        self.skipped[reason] += 1
        if where is not None:
            self.first.setdefault(reason, where)

    def add(self, other: IngestReport) -> None:
        """Fold another pass's counts into this one."""
        self.lines_read += other.lines_read
        self.rows_stored += other.rows_stored
        self.skipped.update(other.skipped)
        self.files += other.files
        for reason, where in other.first.items():
            self.first.setdefault(reason, where)
        self.see_fields(other.fields_seen)

    def see_fields(self, names: Iterable[str]) -> None:
        for name in names:
            if len(self.fields_seen) >= FIELDS_SEEN_MAX:
                return
            self.fields_seen.add(name)


class TimestampError(ValueError):
    """A time field value that is not a timestamp."""


class AmbiguousTimestampError(TimestampError):
    """A number in the time field of a source that did not say which unit its numbers are in."""


def parse_timestamp(value: Any, time_format: TimeFormat = "iso8601") -> datetime:
    """Read a log timestamp as an aware UTC datetime.

    ISO 8601 strings with any offset (``Z``, ``+02:00``; none means UTC) are always read. Numbers
    and numeric strings are read in the unit ``time_format`` declares (``epoch_s``, ``epoch_ms``);
    with ``iso8601`` (the default) they are refused: ``12345`` could be seconds, milliseconds or a
    mistake, and guessing stored such lines in 1970.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TimestampError(f"timestamp must be a string or a number, got {type(value).__name__}")
    number = _as_number(value)
    if number is not None:
        if time_format not in MICROS_PER_UNIT:
            raise AmbiguousTimestampError(
                f"numeric timestamp {value!r} has no unit: set time_format: epoch_s or epoch_ms on the source"
            )
        return _from_epoch(number, MICROS_PER_UNIT[time_format])
    assert isinstance(value, str)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TimestampError(f"not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise TimestampError(f"timestamp out of range in UTC: {value!r}") from None


def _as_number(value: int | float | str) -> int | float | None:
    """A number, or a string holding one (``"1717243200"``, ``"1717243200.5"``); else ``None``."""
    if not isinstance(value, str):
        return value
    if not _NUMERIC.match(value):
        return None
    return float(value) if "." in value else int(value)


def _from_epoch(number: float, micros_per_unit: int) -> datetime:
    if number != number or number in (float("inf"), float("-inf")):
        raise TimestampError(f"epoch timestamp out of range: {number!r}")
    micros = number * micros_per_unit if isinstance(number, int) else round(number * micros_per_unit)
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise TimestampError(f"epoch timestamp out of range: {number!r}") from None


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (the stored timestamp unit)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def field_value(doc: Mapping[str, Any], name: str) -> Any:
    """A field by dotted name: the literal key first (``@timestamp``, ``a.b``), then the nested path."""
    if name in doc:
        return doc[name]
    current: Any = doc
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


# NaN and Infinity are not JSON, but Python's json.dumps writes them (a NaN feature value is common
# in ML logs). They are read as null, and such a document is written back without them, since
# DuckDB refuses them. One decoder for all lines: json.loads(..., parse_constant=) builds one per call.
_DECODER = json.JSONDecoder(parse_constant=lambda name: None)
_CONSTANTS = ("NaN", "Infinity")


@dataclass
class ParsedLines:
    """Rows ready to store: epoch microseconds and the document text, index-aligned."""

    micros: list[int] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)


def parse_lines(
    lines: Iterable[str | bytes],
    time_field: str,
    not_before: int | None = None,
    *,
    time_format: TimeFormat = "iso8601",
    file: str | None = None,
    first_line: int = 1,
) -> ParsedLines:
    """Parse JSON lines into rows; ``not_before`` (epoch microseconds) drops expired rows.

    ``file`` and ``first_line`` (the number of the first of ``lines`` in it) say where a skipped
    line was. ``report.rows_stored`` is left at 0: the store sets it once rows are written.
    """
    reader = LineReader(time_field, time_format, not_before)
    return parse_numbered(enumerate(lines, start=first_line), reader, file)


def parse_numbered(
    numbered: Iterable[tuple[int, str | bytes]], reader: LineReader, file: str | None = None
) -> ParsedLines:
    """``parse_lines`` of lines given with their numbers (not necessarily consecutive)."""
    out = ParsedLines()
    for number, raw in numbered:
        line = raw.strip()  # also drops the \r of CRLF files
        if not line:
            continue
        out.report.lines_read += 1
        skipped = reader.read(line, out)
        if skipped is not None:
            reason, detail = skipped
            out.report.reject(reason, Rejection(file, number, detail))
    return out


@dataclass(frozen=True)
class LineReader:
    """How a source's lines are read: its time field and format, and the retention's cutoff
    (epoch microseconds; ``None``: none)."""

    time_field: str
    time_format: TimeFormat
    not_before: int | None

    def read(self, raw: str | bytes, out: ParsedLines) -> tuple[str, str] | None:
        """Append one line's row to ``out``, or return why it was skipped: reason and detail."""
        try:
            if isinstance(raw, bytes):
                text = raw.decode("utf-8")
            else:
                text = raw
                text.encode("utf-8")  # a lone surrogate would fail the whole batch insert
            doc = _DECODER.decode(text)
        except ValueError:
            return NOT_JSON, "not JSON"
        moment = document_time(doc, self.time_field, self.time_format, out.report)
        if not isinstance(moment, datetime):
            return moment
        micros = epoch_micros(moment)
        if self.not_before is not None and micros < self.not_before:
            return EXPIRED, EXPIRED_DETAIL
        if any(constant in text for constant in _CONSTANTS):
            text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        out.micros.append(micros)
        out.docs.append(text)
        return None


def decode_line(text: str) -> Any:
    """A line's JSON value (NaN and Infinity read as null); ``ValueError`` when it is not JSON."""
    return _DECODER.decode(text)


def document_time(
    doc: object, time_field: str, time_format: TimeFormat, report: IngestReport
) -> datetime | tuple[str, str]:
    """A decoded line's timestamp, or why it has none: reason and detail. The fields of a
    document without the time field are noted in ``report.fields_seen``."""
    if not isinstance(doc, dict):
        return NOT_AN_OBJECT, f"not a JSON object but {_json_kind(doc)}"
    value = field_value(doc, time_field)
    if value is None:
        report.see_fields(doc)
        return MISSING_TIMESTAMP, f"no time field {time_field!r}"
    try:
        return parse_timestamp(value, time_format)
    except AmbiguousTimestampError as exc:
        return AMBIGUOUS_TIMESTAMP, str(exc)
    except TimestampError as exc:
        return BAD_TIMESTAMP, str(exc)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if not isinstance(value, bool) else "a boolean"


# --------------------------------------------------------------------------- file cursors


@dataclass(frozen=True)
class FileCursor:
    """How far a file has been read, and enough of its identity to notice rotation."""

    path: str
    device: int
    inode: int
    offset: int
    head_len: int = 0
    head_hash: str = ""
    line: int = 0
    """Lines before ``offset``: the number of the next line is ``line + 1``."""


def head_fingerprint(handle: BinaryIO, length: int) -> str:
    """A hash of the first ``length`` bytes of a file (its identity across inode reuse)."""
    handle.seek(0)
    return hashlib.sha1(handle.read(length), usedforsecurity=False).hexdigest()


def resume_cursor(
    path: str, stat: os.stat_result, handle: BinaryIO, known: Mapping[str, FileCursor]
) -> FileCursor:
    """Where to continue reading ``path``: its own cursor when the file is the one we read,
    the cursor of a file it was renamed from (rotation to a name the globs still match), else
    the start -- after rotation, truncation (size below the offset) or for a new file."""
    own = known.get(path)
    candidates = [own] if own is not None else []
    candidates += [c for c in known.values() if c.path != path and (c.device, c.inode) == _identity(stat)]
    for cursor in candidates:
        same_file = (cursor.device, cursor.inode) == _identity(stat) and stat.st_size >= cursor.offset
        if same_file and head_fingerprint(handle, cursor.head_len) == cursor.head_hash:
            return replace(cursor, path=path)
    return FileCursor(path, stat.st_dev, stat.st_ino, 0, 0, head_fingerprint(handle, 0))


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def read_complete_block(handle: BinaryIO, cursor: FileCursor, max_bytes: int) -> tuple[bytes, FileCursor]:
    """Up to ``max_bytes`` of whole lines after the cursor, each ending with its newline, and the
    cursor past them.

    A last line without its newline is left for a later pass (the writer may be mid-line);
    a single line longer than ``max_bytes`` is read whole.
    """
    handle.seek(cursor.offset)
    data = handle.read(max_bytes)
    end = data.rfind(b"\n")
    while end < 0 and (more := handle.read(max_bytes)):
        found = more.rfind(b"\n")
        end = len(data) + found if found >= 0 else -1
        data += more
    if end < 0:
        return b"", cursor
    # What follows the last newline, an unfinished line, is left for a later pass.
    block = data if end + 1 == len(data) else data[: end + 1]
    del data
    advanced = replace(cursor, offset=cursor.offset + end + 1, line=cursor.line + block.count(b"\n"))
    if cursor.head_len < HEAD_BYTES:
        length = min(HEAD_BYTES, advanced.offset)
        advanced = replace(advanced, head_len=length, head_hash=head_fingerprint(handle, length))
    return block, advanced

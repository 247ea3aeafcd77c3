"""JSON-lines ingestion for the embedded store: line parsing, timestamps, and file cursors.

Pure parts only: turning lines into ``(timestamp, document)`` rows with a count of what was
skipped and why, and deciding where to resume reading a file. The DuckDB side (tables,
transactions) lives in ``embedded.py``. A bad line never stops ingestion: it is counted under
a ``SKIP_*`` reason and dropped.
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

SKIP_INVALID_JSON = "invalid JSON"
SKIP_NOT_OBJECT = "not a JSON object"
SKIP_MISSING_TIMESTAMP = "missing timestamp"
SKIP_BAD_TIMESTAMP = "unparsable timestamp"
SKIP_EXPIRED = "older than retention"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
# Epoch magnitudes: seconds until year 5138, then milliseconds, microseconds, nanoseconds.
_EPOCH_SCALES = ((1e11, 1_000_000), (1e14, 1_000), (1e17, 1))
HEAD_BYTES = 256
"""How much of a file's start is fingerprinted to tell a rotated file from the one we read."""


@dataclass
class IngestReport:
    """What one ingestion pass did. ``lines_read == rows_stored + sum(skipped.values())``;
    blank lines are ignored and not counted."""

    lines_read: int = 0
    rows_stored: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    files: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: IngestReport) -> None:
        """Fold another pass's counts into this one."""
        self.lines_read += other.lines_read
        self.rows_stored += other.rows_stored
        self.skipped.update(other.skipped)
        self.files += other.files


class TimestampError(ValueError):
    """A time field value that is not a timestamp."""


def parse_timestamp(value: Any) -> datetime:
    """Read a log timestamp as an aware UTC datetime.

    Accepts ISO 8601 strings with any offset (``Z``, ``+02:00``; none means UTC) and epoch
    numbers or numeric strings, whose unit (s, ms, us, ns) is told by magnitude -- so a
    numeric string such as ``"20240101"`` is read as epoch seconds, not as a date.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TimestampError(f"timestamp must be a string or a number, got {type(value).__name__}")
    if not isinstance(value, str):
        return _from_epoch(value)
    if value.isdigit():  # before ISO: "20240101" is a valid ISO date, but here an epoch
        return _from_epoch(int(value))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        if _NUMERIC.match(value):
            return _from_epoch(float(value) if "." in value else int(value))
        raise TimestampError(f"not an ISO 8601 timestamp: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_epoch(number: float) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=_epoch_micros_of_number(number))
    except OverflowError:
        raise TimestampError(f"epoch timestamp out of range: {number!r}") from None


def _epoch_micros_of_number(number: float) -> int:
    """Microseconds since the epoch for an epoch number in s, ms, us or ns (by magnitude)."""
    if number != number or number in (float("inf"), float("-inf")):
        raise TimestampError(f"epoch timestamp out of range: {number!r}")
    for limit, scale in _EPOCH_SCALES:
        if abs(number) < limit:
            return int(number * scale) if isinstance(number, int) else round(number * scale)
    return int(number) // 1000 if isinstance(number, int) else round(number / 1000)


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


def parse_lines(lines: Iterable[str | bytes], time_field: str, not_before: int | None = None) -> ParsedLines:
    """Parse JSON lines into rows; ``not_before`` (epoch microseconds) drops expired rows.

    ``report.rows_stored`` is left at 0: the store sets it once rows are written.
    """
    out = ParsedLines()
    skipped = out.report.skipped
    for raw in lines:
        line = raw.strip()  # also drops the \r of CRLF files
        if not line:
            continue
        out.report.lines_read += 1
        reason = _parse_line(line, time_field, not_before, out)
        if reason is not None:
            skipped[reason] += 1
    return out


def _parse_line(raw: str | bytes, time_field: str, not_before: int | None, out: ParsedLines) -> str | None:
    """Append one line's row to ``out``, or return why it was skipped."""
    try:
        if isinstance(raw, bytes):
            text = raw.decode("utf-8")
        else:
            text = raw
            text.encode("utf-8")  # a lone surrogate would fail the whole batch insert
        doc = _DECODER.decode(text)
    except ValueError:
        return SKIP_INVALID_JSON
    if not isinstance(doc, dict):
        return SKIP_NOT_OBJECT
    value = field_value(doc, time_field)
    if value is None:
        return SKIP_MISSING_TIMESTAMP
    try:
        micros = epoch_micros(parse_timestamp(value))
    except TimestampError:
        return SKIP_BAD_TIMESTAMP
    if not_before is not None and micros < not_before:
        return SKIP_EXPIRED
    if any(constant in text for constant in _CONSTANTS):
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    out.micros.append(micros)
    out.docs.append(text)
    return None


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


def read_complete_lines(
    handle: BinaryIO, cursor: FileCursor, max_bytes: int
) -> tuple[list[bytes], FileCursor]:
    """Up to ``max_bytes`` of whole lines after the cursor, and the cursor past them.

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
        return [], cursor
    advanced = replace(cursor, offset=cursor.offset + end + 1)
    if cursor.head_len < HEAD_BYTES:
        length = min(HEAD_BYTES, advanced.offset)
        advanced = replace(advanced, head_len=length, head_hash=head_fingerprint(handle, length))
    lines = data.split(b"\n")  # no copy of the whole lines first: a chunk is held once, as lines
    del lines[-1]  # what follows the last newline: an unfinished line, left for a later pass
    return lines, advanced

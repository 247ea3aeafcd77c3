"""Loading a JSON-lines log into a search index with ``_bulk``, reporting every rejected document.

The same file can be replayed on the embedded store: lines are read with the embedded store's
rules (``watcher.store.ingest``) -- a line that is not a JSON object or has no readable timestamp
(a number needs the source's ``time_format``) is skipped for the same reason on both stores -- and
the timestamp is rewritten as an ISO 8601 UTC string, because the search store would read an epoch
in seconds as milliseconds. What the server
refuses (a value that does not fit the mapping) is reported with its line number and the
server's reason.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from watcher.config.sources import TimeFormat
from watcher.store.answers import error_message
from watcher.store.dsl import Json
from watcher.store.ingest import (
    NOT_JSON,
    FileCursor,
    IngestReport,
    Rejection,
    decode_line,
    document_time,
)
from watcher.store.search import SearchStore

BATCH_SIZE = 5000
MAX_EXAMPLES = 20


def new_index_mappings(time_field: str) -> Json:
    """The mapping of an index ``watcher ingest`` creates: the time field a date, strings exact
    keywords (log fields are matched and grouped, not searched as prose), fractional numbers
    doubles (the default ``float`` would move values across histogram edges and range bounds),
    the rest dynamic."""
    return {
        "dynamic_templates": [
            {"strings_as_keywords": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}},
            {"fractions_as_doubles": {"match_mapping_type": "double", "mapping": {"type": "double"}}},
        ],
        "properties": {time_field: {"type": "date"}},
    }


@dataclass
class BulkReport:
    """What a load did. ``lines.skipped`` counts rejected lines by reason: the embedded store's
    reasons (``not_json``, ``missing_timestamp``, ...) or the server's error type; ``examples``
    keeps the first rejected lines with the full reason."""

    lines: IngestReport = field(default_factory=IngestReport)
    examples: list[tuple[int, str]] = field(default_factory=list)
    file: str | None = None
    last_line: int = 0  # the number of the last line read, blank or not

    @property
    def lines_read(self) -> int:
        return self.lines.lines_read

    @property
    def indexed(self) -> int:
        return self.lines.rows_stored

    @property
    def rejected(self) -> Counter[str]:
        return self.lines.skipped

    @property
    def rejected_total(self) -> int:
        return self.lines.skipped_total

    def reject(self, line: int, kind: str, reason: str) -> None:
        self.lines.reject(kind, Rejection(self.file, line, reason))
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((line, reason))


def ingest_index(pattern: str) -> str:
    """The index ``watcher ingest`` writes to for a source's index pattern: the pattern itself
    when it names one index, else the first pattern with ``*`` read as ``ingest``
    (``ml-api-*`` -> ``ml-api-ingest``), which the pattern still matches."""
    first = pattern.split(",")[0].strip()
    name = first.replace("*", "ingest").replace("?", "x")
    if not fnmatch.fnmatchcase(name, first):
        raise ValueError(f"cannot derive an index name from pattern {pattern!r}; pass --index")
    return name


def load_file(
    store: SearchStore, path: Path, index: str, batch_size: int = BATCH_SIZE, resume: FileCursor | None = None
) -> BulkReport:
    """Load one JSON-lines file into ``index`` (created with ``new_index_mappings`` if missing),
    from its start or from ``resume`` (its offset and line number)."""
    with path.open("rb") as handle:
        handle.seek(resume.offset if resume is not None else 0)
        first = resume.line + 1 if resume is not None else 1
        return load_lines(store, handle, index, batch_size, file=str(path), first_line=first)


def load_lines(
    store: SearchStore,
    lines: Iterable[str | bytes],
    index: str,
    batch_size: int = BATCH_SIZE,
    *,
    file: str | None = None,
    first_line: int = 1,
) -> BulkReport:
    """Load JSON lines into ``index`` in ``_bulk`` requests of ``batch_size`` documents, then refresh."""
    source = store.source
    store.ensure_index(index, new_index_mappings(source.time_field))
    report = BulkReport(file=file)
    batch: list[tuple[int, Json]] = []
    for number, raw in enumerate(lines, start=first_line):
        report.last_line = number
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        report.lines.lines_read += 1
        doc = _document(text, source.time_field, source.time_format, report.lines)
        if isinstance(doc, tuple):
            report.reject(number, *doc)
            continue
        batch.append((number, doc))
        if len(batch) >= batch_size:
            _send(store, index, batch, report)
            batch = []
    if batch:
        _send(store, index, batch, report)
    store.refresh(index)
    return report


def _document(
    text: str, time_field: str, time_format: TimeFormat, lines: IngestReport
) -> Json | tuple[str, str]:
    """The document to index, or why the line is skipped: reason and detail."""
    try:
        doc = decode_line(text)
    except ValueError:
        return NOT_JSON, "not JSON"
    moment = document_time(doc, time_field, time_format, lines)
    if not isinstance(moment, datetime):
        return moment
    _set_field(doc, time_field, moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    return cast(Json, doc)


def _set_field(doc: MutableMapping[str, Any], name: str, value: str) -> None:
    """Write ``name`` where ``field_value`` found it: the literal key, else the nested path."""
    if name in doc:
        doc[name] = value
        return
    current: Any = doc
    parts = name.split(".")
    for part in parts[:-1]:
        current = current[part]
    current[parts[-1]] = value


def _send(store: SearchStore, index: str, batch: list[tuple[int, Json]], report: BulkReport) -> None:
    operations: list[Json] = []
    for _, doc in batch:
        operations += [{"index": {}}, doc]
    answer = store.bulk(index, operations)
    items = answer.get("items") or []
    for (number, _), item in zip(batch, items, strict=False):
        outcome: Mapping[str, Any] = next(iter(item.values()), {}) if isinstance(item, Mapping) else {}
        error = outcome.get("error")
        if error is None and int(outcome.get("status", 200)) < 300:
            report.lines.rows_stored += 1
            continue
        kind = error.get("type", "error") if isinstance(error, Mapping) else "error"
        report.reject(number, str(kind), error_message(error) if error else f"status {outcome.get('status')}")
    for number, _ in batch[len(items) :]:
        report.reject(number, "no answer", "the store did not report on this document")

"""Loading a JSON-lines log into a search index with ``_bulk``, reporting every rejected document.

The same file can be replayed on the embedded store: lines are read with the embedded store's
rules (``watcher.store.ingest``) -- a line that is not a JSON object or has no readable timestamp
is skipped for the same reason on both stores -- and the timestamp is rewritten as an ISO 8601 UTC
string, because the search store would read an epoch in seconds as milliseconds. What the server
refuses (a value that does not fit the mapping) is reported with its line number and the
server's reason.
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.store.answers import error_message
from watcher.store.dsl import Json
from watcher.store.ingest import (
    SKIP_BAD_TIMESTAMP,
    SKIP_INVALID_JSON,
    SKIP_MISSING_TIMESTAMP,
    SKIP_NOT_OBJECT,
    TimestampError,
    field_value,
    parse_timestamp,
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
    """What a load did. ``lines_read == indexed + rejected_total``; blank lines are not counted.

    ``rejected`` counts by reason (the embedded store's skip reasons, or the server's error
    type); ``examples`` keeps the first rejected lines with the full reason.
    """

    lines_read: int = 0
    indexed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, line: int, kind: str, reason: str) -> None:
        self.rejected[kind] += 1
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


def load_file(store: SearchStore, path: Path, index: str, batch_size: int = BATCH_SIZE) -> BulkReport:
    """Load one JSON-lines file into ``index`` (created with ``new_index_mappings`` if missing)."""
    with path.open("rb") as handle:
        return load_lines(store, handle, index, batch_size)


def load_lines(
    store: SearchStore, lines: Iterable[str | bytes], index: str, batch_size: int = BATCH_SIZE
) -> BulkReport:
    """Load JSON lines into ``index`` in ``_bulk`` requests of ``batch_size`` documents, then refresh."""
    time_field = store.source.time_field
    store.ensure_index(index, new_index_mappings(time_field))
    report = BulkReport()
    batch: list[tuple[int, Json]] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        report.lines_read += 1
        doc, reason = _document(text, time_field)
        if doc is None:
            report.reject(number, reason, reason)
            continue
        batch.append((number, doc))
        if len(batch) >= batch_size:
            _send(store, index, batch, report)
            batch = []
    if batch:
        _send(store, index, batch, report)
    store.refresh(index)
    return report


def _document(text: str, time_field: str) -> tuple[Json | None, str]:
    """The document to index, or ``None`` and why the line is skipped."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None, SKIP_INVALID_JSON
    if not isinstance(doc, dict):
        return None, SKIP_NOT_OBJECT
    value = field_value(doc, time_field)
    if value is None:
        return None, SKIP_MISSING_TIMESTAMP
    try:
        moment = parse_timestamp(value)
    except TimestampError:
        return None, SKIP_BAD_TIMESTAMP
    _set_field(doc, time_field, moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    return doc, ""


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
            report.indexed += 1
            continue
        kind = error.get("type", "error") if isinstance(error, Mapping) else "error"
        report.reject(number, str(kind), error_message(error) if error else f"status {outcome.get('status')}")
    for number, _ in batch[len(items) :]:
        report.reject(number, "no answer", "the store did not report on this document")

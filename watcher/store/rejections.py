"""Skipped log lines, told: a rate-limited warning while the daemon runs, and one summary line
for ``watcher ingest`` and ``watcher backtest``. A line is never dropped without a trace.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from watcher.store.ingest import (
    AMBIGUOUS_TIMESTAMP,
    BAD_TIMESTAMP,
    EXPIRED,
    MISSING_TIMESTAMP,
    NOT_AN_OBJECT,
    NOT_JSON,
    IngestReport,
    Rejection,
)

log = logging.getLogger("watcher.store.ingest")

WARN_EVERY = 60.0
"""Seconds between two warnings for the same reason; the lines skipped meanwhile are counted."""

_LABELS = {
    NOT_JSON: "not JSON",
    NOT_AN_OBJECT: "not a JSON object",
    MISSING_TIMESTAMP: "missing timestamp (field {field!r})",
    BAD_TIMESTAMP: "unparsable timestamp (field {field!r})",
    AMBIGUOUS_TIMESTAMP: "numeric timestamp without time_format",
    EXPIRED: "older than the retention",
}


def label(reason: str, time_field: str) -> str:
    """A reason in words; the server's own error types (search ingest) as they are."""
    return _LABELS.get(reason, reason).format(field=time_field)


class RejectionLog:
    """At most one warning per reason every ``every`` seconds, with the file and line of the
    first line skipped and how many were skipped for that reason since the last warning."""

    def __init__(
        self,
        logger: logging.Logger = log,
        every: float = WARN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log, self._every, self._clock = logger, every, clock
        self._last: dict[str, float] = {}
        self._unsaid: Counter[str] = Counter()

    def record(self, report: IngestReport) -> None:
        """Note a pass's skipped lines; warn for each reason not warned about lately."""
        now = self._clock()
        for reason, count in report.skipped.items():
            self._unsaid[reason] += count
            last = self._last.get(reason)
            where = report.first.get(reason)
            if where is None or (last is not None and now - last < self._every):
                continue
            self._last[reason] = now
            self._warn(reason, where, self._unsaid.pop(reason) - 1)

    def _warn(self, reason: str, where: Rejection, others: int) -> None:
        lines = "line" if others == 1 else "lines"
        more = f" (and {others:,} more {lines} skipped for {reason})" if others else ""
        self._log.warning(
            "%s: log line skipped (%s): %s%s",
            where.location,
            reason,
            where.detail,
            more,
            extra={"reason": reason, "file": where.file, "line": where.line},
        )


def summary(report: IngestReport, time_field: str) -> str:
    """``skipped 12 lines: 10 missing timestamp (field 'ts'), 2 not JSON; first at app.jsonl:17``."""
    kinds = ", ".join(
        f"{count:,} {label(reason, time_field)}" for reason, count in report.skipped.most_common()
    )
    lines = "line" if report.skipped_total == 1 else "lines"
    text = f"skipped {report.skipped_total:,} {lines}: {kinds}"
    first = _first(report.first.values())
    return f"{text}; first at {first.location}" if first is not None else text


def _first(rejections: Iterable[Rejection]) -> Rejection | None:
    ordered = sorted(rejections, key=lambda r: (r.file or "", r.line))
    return ordered[0] if ordered else None


def no_usable_lines(report: IngestReport, time_field: str, where: str) -> str:
    """Why nothing could be stored from ``where``: the time field looked for and the fields seen."""
    if not report.lines_read:
        return f"no log lines in {where}"
    text = f"no usable log lines in {where} ({summary(report, time_field)})"
    if report.skipped.get(MISSING_TIMESTAMP):
        seen = ", ".join(sorted(report.fields_seen)) or "none"
        text += f"; looked for the time field {time_field!r}, saw the fields: {seen} (set time_field)"
    return text

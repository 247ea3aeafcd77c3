"""Where a search index's data starts, for its coverage (``watcher.store.coverage``).

Elasticsearch and OpenSearch answer a window before the first document like a quiet one, so a
flatline fired at the start of every backtest of an index and on a fresh index. The first
document's time costs one search (``size: 0``, a ``min`` aggregation on the time field, no hits
counted), asked once an hour: it only moves when retention drops old indices or a backfill adds
older documents. An empty index is asked again after a minute, so coverage starts soon after the
first document. ``since:`` on the source replaces the search (an index whose oldest documents are
incomplete, or a cluster that should not be asked).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from watcher.config import SearchSource
from watcher.store.base import StoreError
from watcher.store.dsl import Json

FIRST_TTL = 3600.0
"""Seconds the first document's time is kept."""
EMPTY_TTL = 60.0
"""Seconds an empty index is taken as empty before it is asked again."""


class FirstDocument:
    """The source's ``since:``, or its first document's time asked through ``ask`` (one search
    body in, its response or the store's error message out) and kept for ``FIRST_TTL``."""

    def __init__(
        self, source: SearchSource, ask: Callable[[Json], Json | str], clock: Callable[[], float]
    ) -> None:
        self._source = source
        self._ask = ask
        self._clock = clock
        self._known: tuple[datetime | None, float] | None = None  # the answer and when it expires

    def time(self) -> datetime | None:
        """The first document's time, ``None`` when the index holds none; ``StoreError`` when the
        store cannot say (the caller then counts every window as covered, as before)."""
        if self._source.since is not None:
            return self._source.since
        now = self._clock()
        if self._known is not None and now < self._known[1]:
            return self._known[0]
        answer = self._ask(first_document_body(self._source.time_field))
        if isinstance(answer, str):
            raise StoreError(f"cannot find the first document of {self._source.index}: {answer}")
        value = ((answer.get("aggregations") or {}).get("first") or {}).get("value")
        first = None if value is None else datetime.fromtimestamp(float(value) / 1000, UTC)
        self._known = (first, now + (FIRST_TTL if first is not None else EMPTY_TTL))
        return first


def first_document_body(time_field: str) -> Json:
    """The cheapest search for the oldest time: no hits, no total, one ``min``."""
    return {"size": 0, "track_total_hits": False, "aggs": {"first": {"min": {"field": time_field}}}}

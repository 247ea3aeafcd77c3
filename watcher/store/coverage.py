"""From when a store holds data: a window that reaches before it is "not enough data".

A window before the first log line is not an empty window: nothing was collected then. Evaluated as
empty, it fired a flatline at the start of every backtest (its first windows reach back before the
log) and made a reference window (``offset: 1d``) before the data look like a quiet day. A store
that knows its coverage says from when (the embedded store: its oldest stored row, which moves with
ingestion and retention); one that does not (Elasticsearch/OpenSearch) says nothing, and every window
counts as covered, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from watcher.query import Query
from watcher.schedule import aligned
from watcher.store.base import LogStore

_UNKNOWN = object()


class Coverage:
    """Per tick: each source's first stored time, asked once."""

    def __init__(self, stores: Mapping[str, LogStore]) -> None:
        self._stores = stores
        self._since: dict[str, object] = {}

    def uncovered(self, source: str, queries: Sequence[Query], every: timedelta) -> str | None:
        """Why ``queries`` (an evaluation's windows, references included) are not covered by the
        source's data, or None when they are (or the store cannot tell). Coverage starts at the
        first log line rounded down to the rule's interval (``every``): the interval holding the
        first line counts as covered, so a sparse log's first line can fire its rule."""
        if not queries:
            return None
        since = self._first(source)
        if since is _UNKNOWN:
            return None
        earliest = min(query.window.start for query in queries)
        if since is None:
            return "not enough data: the store holds no log lines yet"
        assert isinstance(since, datetime)
        since = aligned(since, every)
        if earliest < since:
            return (
                f"not enough data: the window from {earliest:%Y-%m-%d %H:%M:%S} UTC reaches before the first "
                f"log line the store holds ({since:%Y-%m-%d %H:%M:%S} UTC)"
            )
        return None

    def _first(self, source: str) -> object:
        if source not in self._since:
            first_time = getattr(self._stores.get(source), "first_time", None)
            self._since[source] = _UNKNOWN if first_time is None else first_time()
        return self._since[source]

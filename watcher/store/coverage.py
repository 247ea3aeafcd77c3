"""When a store holds data: a window that reaches before it, or into a configured gap, is "not
enough data".

A window before the first log line is not an empty window: nothing was collected then. Evaluated as
empty, it fired a flatline at the start of every backtest (its first windows reach back before the
log) and made a reference window (``offset: 1d``) before the data look like a quiet day. A store
that knows its coverage says from when: the embedded store its oldest stored row, which moves with
ingestion and retention; Elasticsearch/OpenSearch the source's ``since:`` or its first document
(``watcher.store.first_document``). A store that cannot tell (no ``first_time``, or it failed to
answer) says nothing, and every window counts as covered, as before. Holes after the first line are
only known when configured: a source's ``gaps`` (``watcher.config.Gap``).

Reference windows (``watcher.detect.references``) are judged one by one (``excluded``): an uncovered
one is left out and the others still compared with, where one uncovered window of an evaluation
otherwise makes all of it "not enough data" (``uncovered``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from watcher.config.sources import Gap
from watcher.query import Query, Window
from watcher.schedule import aligned
from watcher.store.base import LogStore, StoreError

_UNKNOWN = object()


class Coverage:
    """Per tick: each source's first stored time, asked once."""

    def __init__(
        self, stores: Mapping[str, LogStore], gaps: Mapping[str, Sequence[Gap]] | None = None
    ) -> None:
        self._stores = stores
        self._gaps = gaps or {}
        self._since: dict[str, object] = {}
        self._grid: dict[tuple[datetime, timedelta], datetime] = {}

    def uncovered(self, source: str, queries: Sequence[Query], every: timedelta) -> str | None:
        """Why ``queries`` (an evaluation's windows, references included) are not covered by the
        source's data, or None when they are (or the store cannot tell). Coverage starts at the
        first log line rounded down to the rule's interval (``every``): the interval holding the
        first line counts as covered, so a sparse log's first line can fire its rule."""
        if not queries:
            return None
        for query in queries:
            if (gap := self._gap(source, query.window)) is not None:
                return f"not enough data: the window from {query.window.start:%Y-%m-%d %H:%M:%S} UTC is {gap}"
        since = self._first(source)
        if since is _UNKNOWN:
            return None
        earliest = min(query.window.start for query in queries)
        if since is None:
            return "not enough data: the store holds no log lines yet"
        assert isinstance(since, datetime)
        since = self._aligned(since, every)
        if earliest < since:
            return (
                f"not enough data: the window from {earliest:%Y-%m-%d %H:%M:%S} UTC reaches before the first "
                f"log line the store holds ({since:%Y-%m-%d %H:%M:%S} UTC)"
            )
        return None

    def excluded(self, source: str, windows: Sequence[Window], every: timedelta) -> dict[int, str]:
        """The reference windows (by position, 1 first) the source has no data for, with why."""
        since = self._first(source)
        if isinstance(since, datetime):
            since = self._aligned(since, every)
        found: dict[int, str] = {}
        for position, window in enumerate(windows, 1):
            if (gap := self._gap(source, window)) is not None:
                found[position] = gap
            elif since is None:
                found[position] = "before the first log line (the store holds none yet)"
            elif isinstance(since, datetime) and window.start < since:
                found[position] = f"before the first log line ({since:%Y-%m-%d %H:%M} UTC)"
        return found

    def _aligned(self, since: datetime, every: timedelta) -> datetime:
        """``aligned(since, every)``, once per tick per interval (every evaluation asks)."""
        key = (since, every)
        if (found := self._grid.get(key)) is None:
            found = self._grid[key] = aligned(since, every)
        return found

    def _gap(self, source: str, window: Window) -> str | None:
        for gap in self._gaps.get(source, ()):
            if window.start < gap.end and gap.start < window.end:
                start, end = f"{gap.start:%Y-%m-%d %H:%M}", f"{gap.end:%Y-%m-%d %H:%M}"
                return f"in the store gap from {start} to {end} UTC ({gap.reason})"
        return None

    def _first(self, source: str) -> object:
        if source not in self._since:
            first_time = getattr(self._stores.get(source), "first_time", None)
            try:
                self._since[source] = _UNKNOWN if first_time is None else first_time()
            except StoreError:  # cannot tell this time: covered, as the store's answers decide
                self._since[source] = _UNKNOWN
        return self._since[source]

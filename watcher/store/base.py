"""The one interface every log store implements. Detectors never see a backend.

Also what a store declares beyond it: ``live_partials`` is read here, beside the protocol, so the
daemon asks any store the same way without importing a backend's module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from watcher.query import Query, QueryResult


class StoreError(Exception):
    """The store could not answer at all (unreachable, bad credentials). Per-query failures are
    reported in ``QueryResult.error`` instead, so one bad rule never fails the others."""


class LogStore(Protocol):
    """A source of aggregated log data."""

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        """Answer a batch of queries in as few round trips as the backend allows.

        Returns one result per query, in order. Must not raise for a problem with one query
        (that query's result carries ``error``); may raise ``StoreError`` when nothing can be
        answered, in which case every rule in the batch goes to its error state.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def live_partials(store: LogStore) -> bool:
    """Whether live ticks read ``store`` through per-bucket partials (``watcher.store.partials``).

    Both are asked for the newest interval only. A search store: re-reading 5-minute windows every
    minute cost osmem-server 17x the CPU per rule-tick (bench_search_tick.py --partials). The
    embedded store, since window sums slide and the newest buckets are a statement of their own:
    200 rules over 1M rows, 0.22 s CPU per tick against 0.77 s re-reading (bench_embedded_tick.py).

    Asked of the store (``live_partials``), so a daemon without search sources does not load the
    search store's modules (1 MB of RSS)."""
    return bool(getattr(store, "live_partials", False))

"""The one interface every log store implements. Detectors never see a backend."""

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

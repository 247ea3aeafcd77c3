"""Opening a store for a configured source: one explicit registry from ``store:`` kind to backend.

Backends are imported lazily so the daemon does not pay for clients it does not use (the search
clients alone cost tens of MB of RSS).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from watcher.config import EmbeddedSource, SearchSource, Source
from watcher.store.base import LogStore

BACKENDS = {
    "embedded": "watcher.store.embedded",
    "elasticsearch": "watcher.store.search",
    "opensearch": "watcher.store.search",
}


def open_store(source: Source) -> LogStore:
    """The store behind a configured source (each backend module exposes ``from_source``)."""
    module = importlib.import_module(BACKENDS[source.store])
    store: LogStore = module.from_source(source)
    return store


def open_stores(sources: Mapping[str, Source], names: set[str] | None = None) -> dict[str, LogStore]:
    """Stores for the named sources (all when ``names`` is None)."""
    wanted = sources.keys() if names is None else names & sources.keys()
    return {name: open_store(sources[name]) for name in sorted(wanted)}


__all__ = ["EmbeddedSource", "SearchSource", "open_store", "open_stores"]

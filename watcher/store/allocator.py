"""DuckDB's bundled jemalloc: handing back to the OS the pages it keeps after DuckDB freed them.

jemalloc keeps dirty pages until a decay purges them, and the decay only runs when DuckDB
allocates again: with 1,000 rules each tick's fused query leaves about 12 MB of such pages, and
ingesting a backlog about 20 MB. jemalloc's ``arena.<all>.purge`` returns them at once; DuckDB
exports that control as ``duckdb_je_mallctl``. With a DuckDB built without jemalloc the purge is
skipped. The daemon purges after each tick (``watcher.process.memory``), the embedded store after
it dropped its cached blocks (``EmbeddedStore.trim_cache``).
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

_ALL_ARENAS = 4096
"""jemalloc's MALLCTL_ARENAS_ALL: the arena index that names every arena."""
_DUCKDB_MODULES = ("_duckdb", "duckdb.duckdb")
"""Where DuckDB's compiled module lives (2.x, 1.x)."""

_jemalloc_purge: Callable[[], object] | None = None
_searched = False


def purge() -> None:
    """Purge every arena of the loaded DuckDB's jemalloc (well under a millisecond); nothing when
    DuckDB is not loaded or has no jemalloc."""
    found = _duckdb_purge()
    if found is not None:
        found()


def _duckdb_purge() -> Callable[[], object] | None:
    """jemalloc's purge of every arena of the loaded DuckDB, or None. DuckDB is never imported
    here: a daemon whose sources are all search stores does not load it."""
    global _jemalloc_purge, _searched
    if _searched:
        return _jemalloc_purge
    path = next(
        (getattr(sys.modules[name], "__file__", None) for name in _DUCKDB_MODULES if name in sys.modules),
        None,
    )
    if path is None:
        return None  # not loaded yet: look again next time
    _searched = True
    try:
        mallctl = ctypes.CDLL(path).duckdb_je_mallctl
    except (OSError, AttributeError):
        return None
    name = f"arena.{_ALL_ARENAS}.purge".encode()
    _jemalloc_purge = functools.partial(mallctl, name, None, None, None, ctypes.c_size_t(0))
    return _jemalloc_purge

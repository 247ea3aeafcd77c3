"""Hand memory a tick freed back to the OS, so the daemon's RSS stays flat between ticks.

Three allocators keep what they freed. Python keeps cyclic garbage until a collection. glibc's
malloc keeps free heap and per-thread arenas until ``malloc_trim``. DuckDB allocates through
its own bundled jemalloc, which keeps dirty pages until a decay purges them, and the decay only
runs when DuckDB allocates again: with 1,000 rules each tick's fused query leaves about 12 MB of
such pages, and ingesting a backlog about 20 MB. jemalloc's ``arena.<all>.purge`` returns them at
once; DuckDB exports that control as ``duckdb_je_mallctl``. Without glibc (or with a DuckDB
built without jemalloc) the missing step is skipped.

Python's own allocator cannot return an arena while one object in it lives. Loading 1,000 rules
makes about 20 MB of short-lived parse data, and the rules built meanwhile land in its holes, so
the arenas stay. ``rebuilt`` builds long-lived data again after that garbage is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import pickle
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_ALL_ARENAS = 4096
"""jemalloc's MALLCTL_ARENAS_ALL: the arena index that names every arena."""
_DUCKDB_MODULES = ("_duckdb", "duckdb.duckdb")
"""Where DuckDB's compiled module lives (2.x, 1.x)."""

_libc_name = ctypes.util.find_library("c")
_MALLOC_TRIM: Callable[[int], int] | None = (
    getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None
)
_jemalloc_purge: Callable[[], object] | None = None
_searched = False


def release() -> None:
    """Collect garbage, then ``trim``. After ``freeze`` the collection skips the long-lived heap:
    at 10 rules a full collection of the daemon cost ~30 ms a tick, most of its CPU."""
    gc.collect()
    trim()


def freeze() -> None:
    """Move everything alive now (modules, config, rules, templates: what lives until the next
    reload) to the collector's permanent generation, so later collections only walk what ticks
    allocate. Called after start-up and after each reload; thawed first, so a reload's garbage
    (the replaced rules) is collected before the new heap is frozen."""
    gc.unfreeze()
    release()
    gc.freeze()


def trim() -> None:
    """Trim glibc's heap and purge DuckDB's jemalloc (when DuckDB is loaded): well under a
    millisecond, where a garbage collection of the daemon takes about 30 ms."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    purge = _duckdb_purge()
    if purge is not None:
        purge()


def rebuilt(make: Callable[[], T]) -> T:
    """What ``make`` returns, rebuilt (through pickle) after the garbage ``make`` left is released,
    so it sits in fresh arenas instead of holding the scattered ones. Returned as made when it
    cannot be pickled."""
    made = make()
    try:
        blob = pickle.dumps(made, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return made
    del made
    release()
    value: T = pickle.loads(blob)
    return value


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

"""Hand memory a tick freed back to the OS, so the daemon's RSS stays flat between ticks.

Three allocators keep what they freed. Python keeps cyclic garbage until a collection. glibc's
malloc keeps free heap and per-thread arenas until ``malloc_trim``. DuckDB allocates through
its own bundled jemalloc, purged by ``watcher.store.allocator``. Without glibc (or with a DuckDB
built without jemalloc) the missing step is skipped.

Python's own allocator cannot return an arena while one object in it lives. Loading 1,000 rules
makes about 20 MB of short-lived parse data, and the rules built meanwhile land in its holes, so
the arenas stay. ``rebuilt`` builds long-lived data again after that garbage is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import pickle
from collections.abc import Callable
from typing import TypeVar

from watcher.store import allocator

T = TypeVar("T")

_libc_name = ctypes.util.find_library("c")
_MALLOC_TRIM: Callable[[int], int] | None = (
    getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None
)


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
    allocator.purge()


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

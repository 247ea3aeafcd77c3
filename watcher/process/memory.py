"""Hand memory a tick freed back to the OS, so the daemon's RSS stays flat between ticks.

Three allocators keep what they freed. Python keeps cyclic garbage until a collection. glibc's
malloc keeps free heap and per-thread arenas until ``malloc_trim``. DuckDB allocates through
its own bundled jemalloc, purged by ``watcher.store.allocator``. Without glibc (or with a DuckDB
built without jemalloc) the missing step is skipped.

A tick's end (``release``) does each only when it can pay off, because doing all three in full
every tick cost ~0.5-0.9 ms of a ~9 ms tick at 10 rules on a search store, for nothing there:
over 100 such ticks no collection found one unreachable object (what a tick drops is freed by
its reference count) and glibc held under 1 MB of free heap.

- The young generations (what survived fewer than two of Python's own collections) are collected
  at every tick's end (~0.1 ms), so cyclic garbage still young is freed before the trim.
- The full collection (~0.4 ms: it walks everything made since ``freeze``: caches, partials,
  incident snapshots, growing with rules and open incidents) runs instead at the first tick after
  a ``freeze``, again at the next tick while it keeps finding garbage, and otherwise after twice
  as many ticks as last time, at most ``FULL_EVERY_MAX``. Cyclic garbage a tick leaves in the
  oldest generation (it lived through the collections Python makes during a tick) is therefore
  freed within ``FULL_EVERY_MAX`` ticks, and at every tick's end for a daemon whose ticks leave
  some; Python's own full collections still run too. The schedule is the process's: two daemons
  in one process (tests) count each other's ticks.
- glibc is trimmed when its free heap (``mallinfo2``, ~0.03 ms) holds at least ``TRIM_WORTH``;
  the trim itself walks every arena (~0.09 ms). Below that, less than 1 % of the daemon's RSS
  stays mapped. Free heap already handed back still counts as free, so a heap that keeps 1 MB of
  free chunks is trimmed every tick, as before; so is every heap without ``mallinfo2`` (glibc
  before 2.33).
- DuckDB's jemalloc is purged every tick (~0.03 ms): its dirty pages are not counted cheaply, and
  a fused query leaves about 12 MB of them.

A start, a reload (``freeze``) and ``rebuilt`` collect and trim in full, unconditionally.

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

FULL_EVERY_MAX = 16
"""Ticks between full collections at most, while they find no garbage."""
TRIM_WORTH = 1 << 20
"""Free glibc heap (bytes) worth a ``malloc_trim``."""


_MALLINFO2_FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+)."""

    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS.split()]


_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name) if _libc_name else None
_MALLOC_TRIM: Callable[[int], int] | None = getattr(_libc, "malloc_trim", None)
_MALLINFO2: Callable[[], _MallInfo2] | None = getattr(_libc, "mallinfo2", None)
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _MallInfo2  # type: ignore[attr-defined]


class _FullCollections:
    """When the next full collection is due: backing off while they find nothing."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """The next tick collects in full."""
        self.every, self.waited = 1, 0

    def tick(self) -> None:
        """Count a tick; collect in full when due (spacing the next one by what this one found),
        the young generations otherwise."""
        self.waited += 1
        if self.waited < self.every:
            gc.collect(1)
            return
        found = gc.collect()
        self.waited = 0
        self.every = 1 if found else min(self.every * 2, FULL_EVERY_MAX)


_full = _FullCollections()


def release() -> None:
    """At a tick's end: a full collection when due (the young generations otherwise), glibc
    trimmed when its free heap is worth it, DuckDB's jemalloc purged (the module docstring says
    why, and the bounds)."""
    _full.tick()
    if _MALLINFO2 is None or _MALLINFO2().fordblks >= TRIM_WORTH:
        trim()
    else:
        allocator.purge()


def freeze() -> None:
    """Move everything alive now (modules, config, rules, templates: what lives until the next
    reload) to the collector's permanent generation, so later collections only walk what ticks
    allocate. Called after start-up and after each reload; thawed first, so a reload's garbage
    (the replaced rules) is collected before the new heap is frozen. The next tick collects in
    full again (a reload's new rules may leave garbage of their own)."""
    gc.unfreeze()
    _release_all()
    gc.freeze()
    _full.restart()


def trim() -> None:
    """Trim glibc's heap and purge DuckDB's jemalloc (when DuckDB is loaded), whatever they hold:
    well under a millisecond."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    allocator.purge()


def _release_all() -> None:
    gc.collect()
    trim()


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
    _release_all()
    value: T = pickle.loads(blob)
    return value

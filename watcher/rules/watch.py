"""Noticing that watcher.yaml or a rule file changed, by polling ``stat``.

Polling, not inotify, on purpose: the places rules live in production are where inotify misses
edits — a Kubernetes ConfigMap is updated by swapping a ``..data`` symlink, Docker Desktop bind
mounts deliver no events, editors save by renaming a new file over the old one (the watched
inode disappears), and NFS never notifies. ``stat`` follows symlinks and sees all of these. It is
cheap: one ``stat`` per file, about 10 ms per 1,000 rule files (``bench/bench_reload.py``).

A change is only a hint: the daemon reloads and compares the rules themselves, so a ``touch``
costs a reload that changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from watcher.rules.loader import rule_file_names

Stamp = tuple[int, int, int]  # mtime_ns, size, inode
_MISSING: Stamp = (-1, -1, -1)


def _stamp(path: Path) -> Stamp:
    try:
        info = path.stat()  # follows symlinks: a ConfigMap's swapped ..data target shows here
    except OSError:
        return _MISSING
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def snapshot(paths: Iterable[Path]) -> dict[Path, Stamp]:
    """A stamp for each of ``paths`` (files) and for every rule file under those that are folders."""
    stamps: dict[Path, Stamp] = {}
    for path in paths:
        if path.is_dir():
            stamps.update((file, _stamp(file)) for file in rule_file_names(path))
        else:
            stamps[path] = _stamp(path)
    return stamps


class FileWatch:
    """Tells whether any watched file was added, removed or modified since the last reload.

    A change is reported once the files have settled (the same on two looks in a row), so a
    reload never reads a file an editor or ``kubectl cp`` is still writing: an edit shows up one
    to two poll intervals after its last write.
    """

    def __init__(self, paths: Iterable[Path]) -> None:
        self.watch(paths)

    def watch(self, paths: Iterable[Path], stamps: Mapping[Path, Stamp] | None = None) -> None:
        """Watch these paths from now on (the rule folders may change with watcher.yaml).

        ``stamps`` is the ``snapshot`` taken before the files were read: an edit saved while
        they were being loaded then still shows as a change. Without it, the files as they are now.
        """
        self.paths = list(paths)
        self._loaded = self._seen = snapshot(self.paths) if stamps is None else dict(stamps)

    def changed(self) -> bool:
        current = snapshot(self.paths)
        settled, self._seen = current == self._seen, current
        if not settled or current == self._loaded:
            return False
        self._loaded = current
        return True

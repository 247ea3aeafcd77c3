"""Which files ``watcher ingest`` loaded into a search index, so loading one twice is noticed.

An index keeps no read offsets of its own (the embedded store does: ``ingest_cursors``), so the
command keeps a small JSON file: per source and index, each file's absolute path, the size it had,
a hash of its first bytes and its line count. A file found again with the same size and start is
already loaded; one that grew with the same start is loaded from where the last load stopped;
any other file (rewritten, truncated, new) from its first line.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from watcher.store.ingest import FileCursor

PREFIX_BYTES = 64 * 1024
"""How much of a file's start is hashed to tell the same file from a rewritten one."""


@dataclass(frozen=True)
class LoadedFile:
    """A file as it was when it was loaded."""

    size: int
    prefix_len: int
    prefix_hash: str
    lines: int


def prefix_hash(path: Path, length: int) -> str:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(length)).hexdigest()


def loaded_file(path: Path, lines: int) -> LoadedFile:
    """What to remember of ``path`` after loading all of its ``lines``."""
    size = path.stat().st_size
    length = min(size, PREFIX_BYTES)
    return LoadedFile(size, length, prefix_hash(path, length), lines)


def resume_point(path: Path, before: LoadedFile | None) -> FileCursor | None:
    """Where to go on loading ``path``: ``None`` for its start, else after what was loaded (an
    offset equal to the size: nothing new)."""
    if before is None:
        return None
    stat = path.stat()
    if stat.st_size < before.size or prefix_hash(path, before.prefix_len) != before.prefix_hash:
        return None
    return FileCursor(str(path), stat.st_dev, stat.st_ino, before.size, line=before.lines)


class Ledger:
    """The files loaded into one index of one source, kept in a JSON file."""

    def __init__(self, path: Path, source: str, index: str) -> None:
        self.path, self._key = path, f"{source}/{index}"

    def find(self, file: Path) -> LoadedFile | None:
        entry = self._read().get(self._key, {}).get(os.path.abspath(file), {})
        try:
            return LoadedFile(
                int(str(entry["size"])),
                int(str(entry["prefix_len"])),
                str(entry["prefix_hash"]),
                int(str(entry["lines"])),
            )
        except (KeyError, TypeError, ValueError):  # never loaded, or an entry from elsewhere
            return None

    def record(self, file: Path, loaded: LoadedFile) -> None:
        data = self._read()
        data.setdefault(self._key, {})[os.path.abspath(file)] = asdict(loaded)
        self._write(data)

    def forget_index(self) -> None:
        """The index was created anew: nothing was loaded into it."""
        data = self._read()
        if data.pop(self._key, None) is not None:
            self._write(data)

    def _read(self) -> dict[str, dict[str, dict[str, object]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, dict[str, object]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(self.path)

"""A small real filesystem a test can fill: a tmpfs mounted on a directory of the test's own.

Mounting needs root (CI runs as root); elsewhere the test is skipped with the reason. ``fill``
writes a filler file until the disk says ENOSPC, ``free`` deletes it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = ".filler"


@contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """``directory`` as a tmpfs of ``size`` (e.g. ``"4m"``) for the block; unmounted after it."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> int:
    """Write a filler file until the filesystem is full; returns its size in bytes."""
    fd = os.open(directory / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    written = 0
    try:
        for block in (b"\0" * 65536, b"\0" * 512):  # big blocks, then the last bytes
            try:
                while True:
                    written += os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return written


def free(directory: Path) -> None:
    (directory / FILLER).unlink(missing_ok=True)

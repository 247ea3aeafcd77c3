"""Telling the values a document-level detector found (``watcher.query_documents.Seen``): in a finding's
reason, for a person, and in its details, for templates and webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watcher.query_documents import Seen

SHOWN = 5
"""Values a reason names; the details hold them all."""


def shown(value: tuple[str, ...]) -> str:
    """A value as a reason shows it: ``"u3"``, or ``("u3", "/a")`` for a combination."""
    quoted = ", ".join(f'"{part}"' for part in value)
    return quoted if len(value) == 1 else f"({quoted})"


def listing(found: Sequence[Seen], *, first_seen: bool = False) -> str:
    """The first ``SHOWN`` values with their counts (and first times), then how many more."""
    parts = []
    for seen in found[:SHOWN]:
        when = f", first seen {seen.first:%Y-%m-%d %H:%M:%S} UTC" if first_seen else ""
        parts.append(f"{shown(seen.value)} ({seen.count}{when})")
    more = len(found) - SHOWN
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def details(found: Sequence[Seen], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Every value as a mapping of its fields, with its first and last times and its count."""
    return [
        {
            "value": dict(zip(fields, seen.value, strict=True)),
            "first_seen": seen.first.isoformat(),
            "last_seen": seen.last.isoformat(),
            "count": seen.count,
        }
        for seen in found
    ]

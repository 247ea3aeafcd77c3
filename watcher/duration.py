"""The one duration parser: ``"30s"``, ``"5m"``, ``"1h30m"``, ``"7d"``, ``"2w"``, ``"250ms"``.

Rule files and ``watcher.yaml`` use it through the pydantic ``Duration`` type, so a bad
value such as ``5mins`` is reported by the loader with its file position. A duration is at most
``MAX_DURATION`` (10 years): longer ones overflowed ``timedelta`` (``99999999999999w``) or, later,
the window arithmetic of a tick (``now - history * window`` before the year 1).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$"
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """Parse a duration string; raise ``ValueError`` with a message fit for a user."""
    cleaned = text.strip()
    if not _WHOLE.match(cleaned):
        hint = "use a number and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m"
        raise ValueError(f"invalid duration {_shown(text)}: {hint}")
    parts = [(float(number), _UNITS[unit]) for number, unit in _PART.findall(cleaned)]
    # Summed in seconds first: a float too large for a timedelta is refused, not an OverflowError.
    if sum(number * unit.total_seconds() for number, unit in parts) > MAX_DURATION.total_seconds():
        raise ValueError(
            f"invalid duration {_shown(text)}: at most {format_duration(MAX_DURATION)} (10 years)"
        )
    total = timedelta()
    for number, unit in parts:
        total += number * unit
    return total


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def format_duration(value: timedelta) -> str:
    """Render a timedelta the way users write it (``1h30m``, ``45s``)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        millis = int(value.total_seconds() * 1000)
        return f"{millis}ms" if millis else "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _coerce(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use a string such as 30s or 5m")
    if isinstance(value, int | float):
        # A bare number is ambiguous (seconds? minutes?), so it is refused rather than guessed.
        raise ValueError(f"invalid duration {value!r}: add a unit, e.g. {value}s or {value}m")
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: use a string such as 30s or 5m")


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "1h"]}),
]


def _positive(value: timedelta, info: ValidationInfo) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"'{info.field_name}' must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A ``Duration`` longer than 0s (an interval, a wait, a timeout); ``0s`` is reported at its value."""

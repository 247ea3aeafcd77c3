"""Filters for humans, available in every notification template and rule annotation.

Each turns a number, a duration or a time into the text a person reads in an alert: ``percent``
(0.0712 -> "7.12%"), ``number`` (1234567 -> "1,234,567"), ``duration`` (3905 -> "1h 5m"), ``since``
(a time -> "12m ago", relative to the notification time, so rendering stays pure), ``utc`` (a
time -> "2026-01-05 09:04:05 UTC"), ``measure`` (percent for ratio rules, a number otherwise),
``labels`` and ``emoji``. None renders "n/a". For an alert's evidence (sample log documents):
``cut`` (a long value ends with an ellipsis), ``sample`` (one document as ``field=value`` on one
line, each value cut), ``fields`` (the field names of several documents, for a table's header).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from watcher.rules.evidence import cut as _cut

NOT_AVAILABLE = "n/a"


def percent(value: float | None, digits: int = 2) -> str:
    """0.0712 -> "7.12%"; trailing zeros dropped (0.05 -> "5%")."""
    if value is None or math.isnan(value):
        return NOT_AVAILABLE
    return f"{_trim(f'{value * 100:.{digits}f}')}%"


def number(value: float | None, digits: int | None = None) -> str:
    """Thousands separators, precision by size: 1234567 -> "1,234,567", 0.01234 -> "0.0123"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if digits is not None:
        return f"{value:,.{digits}f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return _trim(f"{value:.1f}")
    if size >= 1:
        return _trim(f"{value:.2f}")
    return f"{value:.3g}"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(value: float | timedelta | None) -> str:
    """Seconds or a timedelta as its two largest units: 3905 -> "1h 5m", 0.25 -> "250ms"."""
    if value is None:
        return NOT_AVAILABLE
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return f"-{duration(-seconds)}"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    counts, rest = [], int(seconds)
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        counts.append((count, unit))
    first = next(index for index, (count, _) in enumerate(counts) if count)
    return " ".join(f"{count}{unit}" for count, unit in counts[first : first + 2] if count)


@pass_context
def since(context: Context, value: datetime | str | None) -> str:
    """How long before the notification time: "12m ago" (or "in 5m" for a future time)."""
    if value is None:
        return NOT_AVAILABLE
    delta = context["now"] - _moment(value)
    if abs(delta) < timedelta(seconds=1):
        return "just now"
    return f"{duration(delta)} ago" if delta > timedelta(0) else f"in {duration(-delta)}"


def utc(value: datetime | str | None) -> str:
    """A time in UTC to the second: "2026-01-05 09:04:05 UTC" (a naive time is taken as UTC)."""
    if value is None:
        return NOT_AVAILABLE
    return _moment(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _moment(value: datetime | str) -> datetime:
    """A time given as a datetime or ISO 8601 text, naive ones taken as UTC."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@pass_context
def measure(context: Context, value: float | None, signal: str | None = None) -> str:
    """A rule's value in its own unit: a percentage for ratio signals, a number otherwise."""
    kind = signal if signal is not None else context.get("signal")
    return percent(value) if kind == "ratio" else number(value)


def labels(mapping: Mapping[str, Any]) -> str:
    """{"model_version": "v2", "region": "eu"} -> "model_version=v2, region=eu"."""
    return ", ".join(f"{key}={mapping[key]}" for key in sorted(mapping))


_EMOJI = {
    "critical": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
    "resolved": ":white_check_mark:",
}


def emoji(severity: str) -> str:
    """A Slack emoji code for a severity (or "resolved")."""
    return _EMOJI.get(str(severity), ":grey_question:")


_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


def cut(value: Any, width: int = 80) -> str:
    """A value of a log document as text on one line, at most ``width`` characters: a longer one
    ends with "…". None reads "null", booleans "true"/"false", as in the JSON."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return _cut(text.translate(_BREAKS), width)


def sample(document: Mapping[str, Any], width: int = 60) -> str:
    """One log document on one line: "status=503 route=/predict trace_id=t7", each value cut."""
    return " ".join(f"{name}={cut(value, width)}" for name, value in document.items())


def fields(documents: Any) -> list[str]:
    """The field names of ``documents`` in the order first seen (a table's columns)."""
    return list(dict.fromkeys(name for document in documents for name in document))


def verdict(details: Mapping[str, Any], signal: str | None = None) -> str:
    """What a forecast or canary rule found, on one line ("" for other detectors):
    "Forecast (linear) crosses 80% at 2026-03-01 06:44:00 UTC, in 45m", or
    "Canary model_version: v4 4% vs v3 1% (two-proportion z-test, p=1.4e-05)"."""
    show = percent if signal == "ratio" else number
    if "crossing_at" in details:
        limit, when = show(details.get("limit")), utc(details["crossing_at"])
        return (
            f"Forecast ({details.get('method')}) crosses {limit} at {when}, in {details.get('crossing_in')}"
        )
    if "candidate" not in details or "p_value" not in details:
        return ""
    p_value = f"{details['test']}, p={float(details['p_value']):.2g}"
    field, candidate, baseline = details.get("field"), details["candidate"], details.get("baseline")
    if "drift" in details:
        drift = f"{details['signal']} {number(details['drift'])}"
        return f"Canary {field}: {drift} between {candidate} and {baseline} ({p_value})"
    ours, theirs = show(details.get("candidate_value")), show(details.get("baseline_value"))
    return f"Canary {field}: {candidate} {ours} vs {baseline} {theirs} ({p_value})"


FILTERS: dict[str, Callable[..., Any]] = {
    "percent": percent,
    "number": number,
    "duration": duration,
    "since": since,
    "utc": utc,
    "measure": measure,
    "labels": labels,
    "emoji": emoji,
    "cut": cut,
    "sample": sample,
    "fields": fields,
    "verdict": verdict,
}

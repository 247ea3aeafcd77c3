"""What a rule test file says: the rules under test, the logs fed to them, what must happen.

A file (see docs/rule-tests.md) names a ``config`` and ``rules`` (paths relative to the file, or
inline rule mappings) and holds ``tests``: each gives its input logs (inline lines, JSON-lines
files, or ``series`` of events per minute), the span of simulated time to evaluate, and the
incidents (``expect``) and, optionally, the notifications that must come out of it, nothing more.

Times are ``"HH:MM"`` (or ``"HH:MM:SS"``) on the file's ``date``, in UTC, or full ISO 8601.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, field_validator, model_validator

from watcher.config.base import ConfigModel

DEFAULT_DATE = date(2026, 1, 1)
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
_RUN = re.compile(r"^(\d+)(?:x(\d+))?$")
MAX_MINUTES = 7 * 24 * 60  # a week of series per test: more is a backtest, not a unit test
MAX_PER_MINUTE = 100_000


def _when(value: Any) -> datetime | timedelta:
    """A time of day (an offset from midnight, placed on the file's date later) or an instant."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads 10:30 unquoted as the base-60 number 630.
        raise ValueError('write times in quotes, e.g. "10:30": unquoted, YAML reads 10:30 as a number')
    if not isinstance(value, str):
        raise ValueError('expected a time such as "08:35" or 2026-01-05T08:35:00Z')
    match = _CLOCK.match(value.strip())
    if match:
        hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    try:
        return _when(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(
            f'invalid time {value!r}: use "HH:MM" or ISO 8601, e.g. 2026-01-05T08:35:00Z'
        ) from None


When = Annotated[datetime | timedelta, PlainValidator(_when)]
EventName = Literal["firing", "update", "resolved"]


def on(day: date, when: datetime | timedelta) -> datetime:
    """``when`` as an instant: a time of day is placed on ``day`` (UTC)."""
    if isinstance(when, datetime):
        return when
    return datetime.combine(day, time(), tzinfo=UTC) + when


def parse_values(text: str) -> list[int]:
    """``"300x30 0x10 50"``: 300 events per minute for 30 minutes, 0 for 10, then 50 for one."""
    counts: list[int] = []
    for token in text.split():
        match = _RUN.match(token)
        if match is None:
            raise ValueError(f"bad run {token!r}: write COUNT or COUNTxMINUTES, e.g. 300x30")
        count, minutes = int(match.group(1)), int(match.group(2) or 1)
        if count > MAX_PER_MINUTE:
            raise ValueError(f"bad run {token!r}: at most {MAX_PER_MINUTE} events per minute")
        if len(counts) + minutes > MAX_MINUTES:
            raise ValueError(f"the series is longer than {MAX_MINUTES} minutes (a week)")
        counts += [count] * minutes
    if not counts:
        raise ValueError("give at least one run, e.g. 300x30")
    return counts


class Series(ConfigModel):
    """Events per minute with the same fields: ``per_minute`` from ``from`` to ``to`` (excluded),
    or ``values`` (one count per minute from ``from``). ``cycle`` gives fields whose value goes
    round a list, one event after the other (latencies, countries)."""

    fields: dict[str, Any]
    cycle: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    from_: When = Field(alias="from")
    to: When | None = None
    per_minute: int | None = Field(default=None, ge=0, le=MAX_PER_MINUTE)
    values: list[int] | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _runs(cls, value: Any) -> Any:
        return parse_values(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_rate(self) -> Series:
        if (self.per_minute is None) == (self.values is None):
            raise ValueError("give either 'per_minute' (with 'to') or 'values'")
        if self.per_minute is not None and self.to is None:
            raise ValueError("'per_minute' needs 'to' (the first minute without events)")
        if self.values is not None and self.to is not None:
            raise ValueError("'values' says how long the series lasts: drop 'to'")
        return self


class Span(ConfigModel):
    """The simulated clock: every tick from ``from`` to ``to`` (included)."""

    from_: When = Field(alias="from")
    to: When


class Expected(ConfigModel):
    """An incident event at a time: ``firing``, ``update`` or ``resolved``."""

    at: When
    rule: str
    group: dict[str, str] = Field(default_factory=dict)
    event: EventName


class IncidentRef(ConfigModel):
    rule: str
    group: dict[str, str] = Field(default_factory=dict)


class ExpectedNotification(ConfigModel):
    """A notification the route tree makes at a time: its receiver, event and incidents."""

    at: When
    receiver: str
    event: EventName
    incidents: list[IncidentRef] = Field(min_length=1)


class RuleTest(ConfigModel):
    name: str
    evaluate: Span
    logs: list[dict[str, Any]] = Field(default_factory=list)
    log_files: list[str] = Field(default_factory=list)
    series: list[Series] = Field(default_factory=list)
    expect: list[Expected] = Field(default_factory=list)
    notifications: list[ExpectedNotification] | None = None

    @field_validator("expect", mode="before")
    @classmethod
    def _nothing(cls, value: Any) -> Any:
        return [] if value is None else value  # `expect:` with nothing under it: nothing fires


class RuleTestFile(ConfigModel):
    config: str | None = None
    time_field: str = "@timestamp"
    rules: list[str | dict[str, Any]] = Field(min_length=1)
    day: date = Field(default=DEFAULT_DATE, alias="date")
    tests: list[RuleTest] = Field(min_length=1)

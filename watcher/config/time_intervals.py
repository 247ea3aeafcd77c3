"""``time_intervals:`` in watcher.yaml (Alertmanager's syntax), named for routes'
``mute_time_intervals`` and ``active_time_intervals``. Each field is read by
``watcher.routing.intervals``, so a mistake is reported at the value that holds it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from watcher.config.base import ConfigModel
from watcher.routing import intervals
from watcher.routing.intervals import Span

Clock = Annotated[
    int,
    PlainValidator(intervals.clock_minutes),
    PlainSerializer(lambda minutes: f"{minutes // 60:02d}:{minutes % 60:02d}", return_type=str),
    WithJsonSchema({"type": "string", "examples": ["09:00"]}),
]
_AS_TEXT = PlainSerializer(str, return_type=str)
_TEXT = WithJsonSchema({"type": "string"})
Weekdays = Annotated[Span, PlainValidator(intervals.weekday_span), _AS_TEXT, _TEXT]
Days = Annotated[Span, PlainValidator(intervals.day_span), _AS_TEXT, _TEXT]
Months = Annotated[Span, PlainValidator(intervals.month_span), _AS_TEXT, _TEXT]
Years = Annotated[Span, PlainValidator(intervals.year_span), _AS_TEXT, _TEXT]
Location = Annotated[str, PlainValidator(intervals.location), WithJsonSchema({"type": "string"})]


class TimeRange(ConfigModel):
    """``start_time`` included, ``end_time`` excluded, as HH:MM (``24:00`` ends the day)."""

    start_time: Clock
    end_time: Clock

    @property
    def start(self) -> int:
        return self.start_time

    @property
    def end(self) -> int:
        return self.end_time

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start_time >= self.end_time:
            raise ValueError(
                "'end_time' must be after 'start_time' (a range over midnight is two ranges, "
                "one ending at 24:00 and one starting at 00:00)"
            )
        return self


class TimeInterval(ConfigModel):
    """One entry of a named interval: it holds when every field given holds."""

    times: list[TimeRange] | None = None
    weekdays: list[Weekdays] | None = None
    days_of_month: list[Days] | None = None
    months: list[Months] | None = None
    years: list[Years] | None = None
    location: Location | None = Field(default=None, description="IANA time zone; UTC when unset")


class NamedTimeInterval(ConfigModel):
    """``- name: business-hours`` with its ``time_intervals`` (any of them holding is enough)."""

    name: str = Field(min_length=1)
    time_intervals: list[TimeInterval] = Field(min_length=1)

"""A test's input logs as files for the replay: inline lines and series written out, files named.

A series minute of ``n`` events spreads them evenly over the minute (``n`` = 4: at :00, :15, :30,
:45 seconds). Each event carries the series' ``fields``, the next value of each ``cycle`` list,
and its time in the time field of every source the rules read, as that source's ``time_format``
says (ISO 8601 by default, or epoch seconds / milliseconds). A dotted name is a nested field:
``features.country: DE`` is ``{"features": {"country": "DE"}}``, as rules read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.config import Config
from watcher.rule_tests.model import RuleTest, Series, on
from watcher.rules.models import Rule

MINUTE = timedelta(minutes=1)


def write_inputs(
    test: RuleTest, day: date, suite_dir: Path, workdir: Path, clocks: dict[str, str]
) -> list[Path]:
    """The log files to replay for ``test``: its ``log_files`` and one file with the rest."""
    lines = workdir / "input.jsonl"
    with lines.open("w", encoding="utf-8") as out:
        for line in test.logs:
            out.write(json.dumps(line, default=str) + "\n")
        for series in test.series:
            for event in events(series, day, clocks):
                out.write(json.dumps(event, default=str) + "\n")
    return [lines, *(suite_dir / name for name in test.log_files)]


def time_fields(config: Config, rules: list[Rule]) -> dict[str, str]:
    """Time field -> time format, for every source the rules read."""
    fields: dict[str, str] = {}
    for rule in rules:
        source = config.sources[rule.source]
        fields[source.time_field] = getattr(source, "time_format", "iso8601")
    return fields


def events(series: Series, day: date, clocks: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Every event of ``series``, oldest first."""
    start = on(day, series.from_)
    number = 0
    for minute, count in enumerate(per_minute(series, day)):
        for index in range(count):
            at = start + minute * MINUTE + index * MINUTE / count
            event: dict[str, Any] = {}
            for name, value in series.fields.items():
                put(event, name, value)
            for name, values in series.cycle.items():
                put(event, name, values[number % len(values)])
            for name, kind in clocks.items():
                put(event, name, stamp(at, kind))
            number += 1
            yield event


def put(event: dict[str, Any], name: str, value: Any) -> None:
    """Set a field; a dotted name (``features.country``) is a nested field, as rules read it."""
    *parents, last = name.split(".")
    for parent in parents:
        inner = event.setdefault(parent, {})
        if not isinstance(inner, dict):
            inner = event[parent] = {}
        event = inner
    event[last] = value


def per_minute(series: Series, day: date) -> list[int]:
    if series.values is not None:
        return series.values
    assert series.per_minute is not None
    assert series.to is not None
    minutes = int((on(day, series.to) - on(day, series.from_)) / MINUTE)
    return [series.per_minute] * max(minutes, 0)


def stamp(at: datetime, kind: str) -> str | int:
    if kind == "epoch_s":
        return int(at.timestamp())
    if kind == "epoch_ms":
        return int(at.timestamp() * 1000)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

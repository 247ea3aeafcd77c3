"""One ElastAlert 2 rule's options, read with positions.

ElastAlert 2 copies every setting of its ``config.yaml`` into each rule that does not set it
(``run_every``, ``buffer_time``, alerter settings such as ``smtp_host``), so an option is looked up
in the rule file first, then in the config; ``where`` names the file and line it came from. The
options a converter reads are remembered, so the others can be reported as ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from watcher.duration import format_duration
from watcher.importers.elastalert.report import Kind, NotConvertibleError, Note, Where
from watcher.rules.positions import DataPath, Located

TIME_UNITS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds")


@dataclass(frozen=True)
class YamlFile:
    """A parsed input file and its path as shown in the report."""

    path: Path
    located: Located

    @property
    def data(self) -> dict[str, Any]:
        return self.located.data if isinstance(self.located.data, dict) else {}

    def where(self, path: DataPath) -> Where:
        return Where(self.path, self.located.key_mark(path))


@dataclass
class RuleOptions:
    """A rule file's options over the config's, and the notes its conversion collects."""

    rule: YamlFile
    config: YamlFile | None = None
    notes: list[Note] = field(default_factory=list)
    read: set[str] = field(default_factory=set)

    def has(self, key: str) -> bool:
        return key in self.rule.data or (self.config is not None and key in self.config.data)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        if key in self.rule.data:
            return self.rule.data[key]
        if self.config is not None and key in self.config.data:
            return self.config.data[key]
        return default

    def where(self, *path: Any) -> Where:
        """The file and line of an option (``where("filter", 0, "term")``)."""
        holder = self.rule if (path and path[0] in self.rule.data) or self.config is None else self.config
        return holder.where(tuple(path))

    def approximated(self, text: str, *path: Any) -> None:
        """Note that the option at ``path`` is converted to something close, saying how."""
        self.read.add(path[0])
        self.notes.append(Note(Kind.APPROXIMATED, self.where(*path), text))

    def not_converted(self, text: str, *path: Any) -> None:
        self.read.add(path[0])
        self.notes.append(Note(Kind.NOT_CONVERTED, self.where(*path), text))

    def ignored(self, text: str, *path: Any) -> None:
        self.read.add(path[0])
        self.notes.append(Note(Kind.IGNORED, self.where(*path), text))

    def refuse(self, why: str, *path: Any) -> NotConvertibleError:
        """The error to raise when the option at ``path`` cannot be converted."""
        return NotConvertibleError(self.where(*path), why)

    def duration(self, key: str) -> timedelta | None:
        """A time option (``{minutes: 5}``) as a timedelta, or None when it is not set."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            raise self.refuse(f"'{key}' must be a mapping such as {{minutes: 5}}, got {value!r}", key)
        if "schedule" in value:
            raise self.refuse(
                f"'{key}' is a cron schedule ({value['schedule']!r}); watcher windows and intervals "
                "are durations",
                key,
            )
        unknown = sorted(set(value) - set(TIME_UNITS))
        if unknown or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in value.values()):
            raise self.refuse(f"'{key}' takes {', '.join(TIME_UNITS)} with numbers, got {value!r}", key)
        return timedelta(**value)

    def shown(self, key: str) -> str:
        """A time option as ElastAlert 2 wrote it and as watcher writes it: ``{minutes: 5} (5m)``."""
        value = self.get(key)
        written = ", ".join(f"{unit}: {number}" for unit, number in value.items())
        delta = self.duration(key)
        return f"{{{written}}}" + (f" ({format_duration(delta)})" if delta is not None else "")


def field_list(value: Any) -> list[str]:
    """``query_key: a`` or ``query_key: [a, b]`` as a list of field names."""
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]

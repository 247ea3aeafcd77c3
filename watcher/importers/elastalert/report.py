"""What the ElastAlert 2 importer says about each input file.

Every note names the ``file:line`` of the option it is about. A file is ``converted``,
``converted with an approximation`` (some option means something slightly different in watcher)
or ``not convertible`` (the first thing that could not be converted, and why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from watcher.rules.positions import Mark


@dataclass(frozen=True)
class Where:
    """A position in an input file (a rule file or ElastAlert 2's config.yaml)."""

    path: Path
    mark: Mark

    def __str__(self) -> str:
        return f"{self.path}:{self.mark.line}"


class NotConvertibleError(Exception):
    """Something in a rule watcher cannot express; the rule is not written."""

    def __init__(self, where: Where, why: str) -> None:
        super().__init__(why)
        self.where = where
        self.why = why


class Kind(Enum):
    APPROXIMATED = "approximated"
    NOT_CONVERTED = "not converted"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Note:
    """An option converted with an approximation, a part left out (an alerter watcher has no
    receiver for), or an option ignored because it plays no part in watcher."""

    kind: Kind
    where: Where
    text: str

    def __str__(self) -> str:
        return f"  {self.where}: {self.kind.value}: {self.text}"


class Status(Enum):
    CONVERTED = "converted"
    APPROXIMATED = "converted with an approximation"
    NOT_CONVERTIBLE = "not convertible"
    NOT_WRITTEN = "not written"


@dataclass
class FileReport:
    """The outcome for one input file: its status line and the notes under it."""

    where: Where
    status: Status
    detail: str = ""
    notes: list[Note] = field(default_factory=list)

    def lines(self) -> list[str]:
        detail = f": {self.detail}" if self.status in (Status.NOT_CONVERTIBLE, Status.NOT_WRITTEN) else ""
        arrow = f" -> {self.detail}" if self.status in (Status.CONVERTED, Status.APPROXIMATED) else ""
        return [f"{self.where}: {self.status.value}{detail}{arrow}", *map(str, self.notes)]


def exit_code(reports: list[FileReport]) -> int:
    """0 every rule converted (approximations included), 1 some not convertible, 2 some rule file
    not written because it exists (without ``--force``)."""
    statuses = {report.status for report in reports}
    if Status.NOT_WRITTEN in statuses:
        return 2
    return 1 if Status.NOT_CONVERTIBLE in statuses else 0

"""``watcher import elastalert``: a folder of ElastAlert 2 rules in, watcher rule files and a
``watcher.yaml`` fragment (sources, receivers, routes) out, and a report line per input file.

Every input file is read with positions (the reader ``watcher check`` uses), so each note names
the ``file:line`` of its option; a file that is not YAML, or a rule that cannot be converted, is
reported and the others are still converted. An existing rule file is never overwritten unless
``force``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watcher.importers.elastalert.alerters import AlerterBook
from watcher.importers.elastalert.convert import ConvertedRule, convert_rule
from watcher.importers.elastalert.options import RuleOptions, YamlFile
from watcher.importers.elastalert.report import (
    FileReport,
    Kind,
    NotConvertibleError,
    Status,
    Where,
)
from watcher.importers.elastalert.sources import SourceBook
from watcher.rules.loader import folder_rule_files
from watcher.rules.positions import START, YamlSyntaxError, parse
from watcher.rules.reader import ReadError, read_text

HEADER = "# Imported from ElastAlert 2 ({source}) by `watcher import elastalert`.\n"


class ImportUsageError(Exception):
    """The import cannot start: a missing folder, an unreadable config (exit code 2)."""


@dataclass
class Importer:
    out_dir: Path
    config: YamlFile | None = None
    force: bool = False
    sources: SourceBook = field(default_factory=SourceBook)
    book: AlerterBook = field(default_factory=AlerterBook)
    names: set[str] = field(default_factory=set)

    def import_file(self, path: Path, relative: Path) -> FileReport:
        try:
            rule_file = read_yaml(path)
        except NotConvertibleError as exc:
            return FileReport(exc.where, Status.NOT_CONVERTIBLE, exc.why)
        options = RuleOptions(rule_file, self.config)
        try:
            converted = convert_rule(options, self.sources, self.book)
        except NotConvertibleError as exc:
            return FileReport(exc.where, Status.NOT_CONVERTIBLE, exc.why, options.notes)
        where = options.where("type")
        target = self.out_dir / relative.with_suffix(".yaml")
        if target.exists() and not self.force:
            return FileReport(where, Status.NOT_WRITTEN, f"{target} exists (use --force to overwrite)")
        self._unique_name(converted)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(HEADER.format(source=path) + dump(converted.rule))
        self.book.keep(converted.routes)
        approximated = any(note.kind in (Kind.APPROXIMATED, Kind.NOT_CONVERTED) for note in options.notes)
        status = Status.APPROXIMATED if approximated else Status.CONVERTED
        return FileReport(where, status, str(target), options.notes)

    def _unique_name(self, converted: ConvertedRule) -> None:
        base = name = converted.rule["name"]
        number = 2
        while name in self.names:
            name, number = f"{base}-{number}", number + 1
        self.names.add(name)
        converted.rule["name"] = name
        for route in converted.routes:
            route["match"]["rule"] = name

    def fragment(self) -> dict[str, Any]:
        return {
            "sources": self.sources.sources,
            "receivers": self.book.receivers,
            "route": {"receiver": "console", "routes": self.book.routes},
        }


def import_folder(rules_dir: Path, importer: Importer) -> list[FileReport]:
    if not rules_dir.is_dir():
        raise ImportUsageError(f"{rules_dir}: not a folder of ElastAlert 2 rules")
    return [importer.import_file(path, path.relative_to(rules_dir)) for path in folder_rule_files(rules_dir)]


def read_config(path: Path) -> YamlFile:
    """ElastAlert 2's config.yaml (its settings are every rule's defaults)."""
    try:
        config = read_yaml(path)
    except NotConvertibleError as exc:
        raise ImportUsageError(f"{exc.where}: {exc.why}") from None
    if not config.data:
        raise ImportUsageError(f"{path}: not an ElastAlert 2 config (expected settings such as run_every)")
    return config


def read_yaml(path: Path) -> YamlFile:
    try:
        located = parse(read_text(path))
    except ReadError as exc:
        raise NotConvertibleError(Where(path, exc.mark), exc.message) from None
    except YamlSyntaxError as exc:
        raise NotConvertibleError(Where(path, exc.problem.mark), exc.problem.message) from None
    if located.problems:
        problem = located.problems[0]
        raise NotConvertibleError(Where(path, problem.mark), problem.message)
    if not isinstance(located.data, dict):
        raise NotConvertibleError(
            Where(path, START), "not a rule: expected a mapping of options such as 'type'"
        )
    return YamlFile(path, located)


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=4096, default_flow_style=None)

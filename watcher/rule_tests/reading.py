"""Reading a rule test file: its YAML with positions, its config and rules, every mistake found.

Mistakes are ``LoadError``s (``path:line:col: message``) like the rule loader's, from the same
positioned YAML (``watcher.rules.positions``) and the same pydantic error translation
(``watcher.rules.diagnostics``). Rule files named by the test keep their own positions; inline
rules are validated in place, so their mistakes point into the test file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watcher.config import Config
from watcher.rule_tests.model import RuleTestFile, on
from watcher.rules.diagnostics import explain, show
from watcher.rules.loader import ConfigError, LoadError, load_config, load_rules
from watcher.rules.models import Rule
from watcher.rules.positions import DataPath, Located, YamlSyntaxError, parse

DEFAULT_RECEIVER = "default"
RELATIVE = "(paths are relative to the test file)"


class RuleTestFileError(Exception):
    """The test file (or the config or rules it names) has mistakes: ``errors``, in file order."""

    def __init__(self, errors: list[LoadError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class Suite:
    """A valid test file with the config and rules it tests."""

    path: Path
    spec: RuleTestFile
    config: Config
    rules: list[Rule]
    located: Located

    def line_of(self, test: int) -> int:
        return self.located.value_mark(("tests", test)).line


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[LoadError] = []
        self.located = Located()

    def error(self, at: DataPath, message: str) -> None:
        mark = self.located.value_mark(at)
        self.errors.append(LoadError(self.path, mark.line, mark.col, message))

    def fail(self) -> RuleTestFileError:
        return RuleTestFileError(sorted(self.errors))


def read_suite(path: Path) -> Suite:
    """The test file at ``path``, or ``RuleTestFileError`` with every mistake in it."""
    reader = _Reader(path)
    spec = _spec(reader)
    if spec is None:
        raise reader.fail()
    config = _config(reader, spec)
    rules = _rules(reader, spec, config)
    if config is None and not reader.errors:
        config = default_config(rules, spec.time_field)
    if config is not None and not reader.errors:
        _check_tests(reader, spec, config, rules)
    if reader.errors or config is None:
        raise reader.fail()
    return Suite(path, spec, config, rules, reader.located)


def _spec(reader: _Reader) -> RuleTestFile | None:
    try:
        reader.located = parse(reader.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        reader.error((), f"cannot read test file: {reason}")
        return None
    except YamlSyntaxError as exc:
        mark = exc.problem.mark
        reader.errors.append(LoadError(reader.path, mark.line, mark.col, exc.problem.message))
        return None
    located = reader.located
    for problem in located.problems:
        reader.errors.append(LoadError(reader.path, problem.mark.line, problem.mark.col, problem.message))
    if not isinstance(located.data, dict):
        got = "an empty file" if located.data is None else show(located.data)
        reader.error((), f"expected a rule test: a mapping with 'rules' and 'tests', got {got}")
        return None
    try:
        spec = RuleTestFile.model_validate(located.data)
    except ValidationError as exc:
        for problem in explain(exc, RuleTestFile, located):
            reader.errors.append(LoadError(reader.path, problem.mark.line, problem.mark.col, problem.message))
        return None
    return None if reader.errors else spec


def _config(reader: _Reader, spec: RuleTestFile) -> Config | None:
    if spec.config is None:
        return None
    path = reader.path.parent / spec.config
    if not path.is_file():
        reader.error(("config",), f"config file {spec.config!r} not found {RELATIVE}")
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        reader.errors.extend(exc.errors)
        return None


def _rules(reader: _Reader, spec: RuleTestFile, config: Config | None) -> list[Rule]:
    paths: list[Path] = []
    inline: list[Rule] = []
    for index, entry in enumerate(spec.rules):
        if isinstance(entry, str):
            path = reader.path.parent / entry
            if path.exists():
                paths.append(path)
            else:
                reader.error(("rules", index), f"no such rule file or folder {entry!r} {RELATIVE}")
        else:
            rule = _inline_rule(reader, ("rules", index), entry)
            inline += [rule] if rule is not None else []
    loaded = load_rules(paths, config) if paths else None
    if loaded is not None:
        reader.errors.extend(loaded.errors)
    rules = (loaded.rules if loaded else []) + inline
    _check_rule_names(reader, spec, rules, config)
    return rules


def _inline_rule(reader: _Reader, at: DataPath, raw: dict[str, Any]) -> Rule | None:
    try:
        return Rule.model_validate(raw, context={"base_dir": reader.path.parent})
    except ValidationError as exc:
        for problem in explain(exc, Rule, reader.located, at):
            reader.errors.append(LoadError(reader.path, problem.mark.line, problem.mark.col, problem.message))
        return None


def _check_rule_names(reader: _Reader, spec: RuleTestFile, rules: list[Rule], config: Config | None) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            reader.error(("rules",), f"two rules under test are named {rule.name!r}")
        seen.add(rule.name)
        if config is not None and rule.source not in config.sources:
            defined = ", ".join(sorted(config.sources)) or "none"
            reader.error(
                ("rules",), f"rule {rule.name!r}: unknown source {rule.source!r} (defined: {defined})"
            )
    if not rules and not reader.errors:
        reader.error(("rules",), "no rules to test")


def default_config(rules: list[Rule], time_field: str) -> Config:
    """Without ``config:``: an embedded source per source the rules name, with ``time_field``,
    and one console receiver, ``default``, that every notification goes to."""
    sources = {rule.source: {"store": "embedded", "time_field": time_field} for rule in rules}
    return Config.model_validate(
        {
            "sources": sources,
            "receivers": {DEFAULT_RECEIVER: {"console": {}}},
            "route": {"receiver": DEFAULT_RECEIVER},
        }
    )


def _check_tests(reader: _Reader, spec: RuleTestFile, config: Config, rules: list[Rule]) -> None:
    """What only the whole file can say: names that exist, files that exist, a clock that runs."""
    names = {rule.name for rule in rules}
    known = ", ".join(sorted(names))
    for index, test in enumerate(spec.tests):
        at: DataPath = ("tests", index)
        if on(spec.day, test.evaluate.to) < on(spec.day, test.evaluate.from_):
            reader.error((*at, "evaluate", "to"), "'to' is before 'from'")
        for number, name in enumerate(test.log_files):
            if not (reader.path.parent / name).is_file():
                reader.error((*at, "log_files", number), f"log file {name!r} not found {RELATIVE}")
        for number, expected in enumerate(test.expect):
            if expected.rule not in names:
                reader.error(
                    (*at, "expect", number, "rule"),
                    f"unknown rule {expected.rule!r} (rules under test: {known})",
                )
        for number, notification in enumerate(test.notifications or []):
            if notification.receiver not in config.receivers:
                receivers = ", ".join(sorted(config.receivers))
                message = f"unknown receiver {notification.receiver!r} (receivers: {receivers})"
                reader.error((*at, "notifications", number, "receiver"), message)

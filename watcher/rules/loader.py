"""Load ``watcher.yaml`` and rule files into typed models, reporting every mistake as ``path:line:col``.

Both loaders read the YAML with positions (``positions``), validate with the pydantic models,
and translate the errors (``diagnostics``). They never stop at the first mistake: a config
error lists all problems of the file; a rule folder loads every valid rule and reports every
invalid one, so one typo does not silence the other rules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watcher.config import Config, EmbeddedSource, MissingEnvError, SearchSource, interpolate
from watcher.config.ha import problems as ha_problems
from watcher.rules.diagnostics import explain, show
from watcher.rules.models import Rule
from watcher.rules.positions import START, DataPath, Located, Mark, YamlSyntaxError, parse
from watcher.rules.reader import ReadError, gc_paused, read_text

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class LoadError:
    """One mistake in one file. ``line`` and ``col`` are 1-based."""

    path: Path
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class ConfigError(Exception):
    """``watcher.yaml`` is invalid; ``errors`` holds every mistake found, in file order."""

    def __init__(self, errors: list[LoadError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


@dataclass
class RuleSet:
    """The valid rules of some rule files, and the mistakes that kept the others out."""

    rules: list[Rule] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    """rule name -> the file it came from"""
    scanned: list[Path] = field(default_factory=list)
    """every rule file read, in load order"""


def _error(path: Path, mark: Mark, message: str) -> LoadError:
    return LoadError(path, mark.line, mark.col, message)


def _read(path: Path, errors: list[LoadError]) -> Located | None:
    """The parsed file, or None (with the reason in ``errors``) when it cannot be read or parsed.

    The one way watcher reads a YAML file (``check``, start-up and hot reload alike): the reader's
    limits hold, and every failure, of the file or of its text, is an error at its position."""
    try:
        located = parse(read_text(path))
    except ReadError as exc:
        errors.append(_error(path, exc.mark, exc.message))
        return None
    except YamlSyntaxError as exc:
        errors.append(_error(path, exc.problem.mark, exc.problem.message))
        return None
    errors.extend(_error(path, problem.mark, problem.message) for problem in located.problems)
    return located


# --------------------------------------------------------------------------- watcher.yaml


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate (``${VAR}``, ``${VAR:-default}``) and validate ``watcher.yaml``.

    Relative paths in it (embedded source files and ingest globs, TLS files, ``state.path``,
    ``rules``, ``templates``) are resolved against the file's folder. Raises ``ConfigError``
    with every mistake found.
    """
    errors: list[LoadError] = []
    with gc_paused():
        located = _read(path, errors)
        config = None
        if located is not None:
            config = _validate_config(path, located, environ, errors)
    if errors or config is None:
        raise ConfigError(sorted(errors))
    return _resolve_paths(config, path.parent)


def _validate_config(
    path: Path, located: Located, environ: Mapping[str, str] | None, errors: list[LoadError]
) -> Config | None:
    if located.data is None:
        errors.append(_error(path, START, "empty file: expected settings such as 'sources'"))
        return None
    if not isinstance(located.data, dict):
        message = f"expected a mapping of settings such as 'sources', got {show(located.data)}"
        errors.append(_error(path, located.value_mark(()), message))
        return None
    env_errors: list[LoadError] = []
    data = _interpolate(path, located, environ, env_errors)
    errors.extend(env_errors)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # A value whose ${VAR} is missing also fails validation; its first message is the useful one.
        taken = {(error.line, error.col) for error in env_errors}
        problems = explain(exc, Config, located)
        errors.extend(
            _error(path, p.mark, p.message) for p in problems if (p.mark.line, p.mark.col) not in taken
        )
        return None
    errors.extend(_error(path, located.value_mark(at), message) for at, message in ha_problems(config))
    return config


def _interpolate(
    path: Path, located: Located, environ: Mapping[str, str] | None, errors: list[LoadError]
) -> Any:
    """Interpolate every string of the tree, reporting each missing variable at its string."""

    def walk(value: Any, at: DataPath) -> Any:
        if isinstance(value, str):
            try:
                return interpolate(value, environ)
            except MissingEnvError as exc:
                errors.append(_error(path, located.value_mark(at), str(exc)))
                return value
        if isinstance(value, dict):
            return {key: walk(item, (*at, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*at, index)) for index, item in enumerate(value)]
        return value

    return walk(located.data, ())


def _resolve_paths(config: Config, base: Path) -> Config:
    def under(value: Path) -> Path:
        value = value.expanduser()
        return value if value.is_absolute() else base / value

    def glob_under(pattern: str) -> str:
        pattern = os.path.expanduser(pattern)
        return pattern if os.path.isabs(pattern) else str(base / pattern)

    sources: dict[str, EmbeddedSource | SearchSource] = {}
    for name, source in config.sources.items():
        if isinstance(source, EmbeddedSource):
            update: dict[str, Any] = {
                "path": under(source.path),
                "ingest": [glob_under(g) for g in source.ingest],
            }
        else:
            files = {
                "ca_certs": source.ca_certs,
                "client_cert": source.client_cert,
                "client_key": source.client_key,
            }
            update = {key: under(value) for key, value in files.items() if value is not None}
        sources[name] = source.model_copy(update=update)
    return config.model_copy(
        update={
            "sources": sources,
            "state": config.state.model_copy(update={"path": under(config.state.path)}),
            "rules": [under(entry) for entry in config.rules],
            "templates": under(config.templates),
        }
    )


# --------------------------------------------------------------------------- rule files


def load_rules(paths: Sequence[Path], config: Config | None = None) -> RuleSet:
    """Load every rule of ``paths`` (files, or folders searched recursively for *.yaml / *.yml).

    A file holds one rule mapping, or ``rules:`` with a list of them. Every mistake is reported
    in ``errors``; every rule without a mistake is loaded. Rule names must be unique across all
    files (the first one keeps the name). With a ``config``, each rule's source must be defined.
    """
    ruleset = RuleSet()
    names: dict[str, tuple[Path, Mark]] = {}  # rule name -> where it was first defined
    for path in _rule_files(paths, ruleset.errors):
        ruleset.scanned.append(path)
        errors: list[LoadError] = []
        with gc_paused():  # one file at a time: its cycles are collected before the next
            _load_file(path, config, names, ruleset, errors)
        ruleset.errors.extend(sorted(errors))
    return ruleset


def _load_file(
    path: Path,
    config: Config | None,
    names: dict[str, tuple[Path, Mark]],
    ruleset: RuleSet,
    errors: list[LoadError],
) -> None:
    located = _read(path, errors)
    if located is None:
        return
    for root in _rule_roots(path, located, errors):
        rule = _load_rule(path, located, root, config, names, errors)
        if rule is not None:
            ruleset.rules.append(rule)
            ruleset.files[rule.name] = path


def _rule_files(paths: Sequence[Path], errors: list[LoadError]) -> Iterator[Path]:
    """Each rule file once, folders expanded in sorted order; hidden files and folders skipped."""
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = folder_rule_files(path)
        elif path.is_file():
            found = [path]
        else:
            errors.append(_error(path, START, "no such rule file or folder"))
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                yield file


def folder_rule_files(folder: Path) -> list[Path]:
    """The rule files in ``folder`` and below, sorted (see ``rule_file_names``)."""
    return sorted(file for file in rule_file_names(folder) if file.is_file())


def rule_file_names(folder: Path) -> Iterator[Path]:
    """Every path in ``folder`` and below named like a rule file: hidden files and folders (a
    Kubernetes ConfigMap's ``..data``) skipped, symlinks followed. No ``stat``: hot reload stamps
    exactly these paths itself, so it watches what the loader reads without a second ``stat``."""
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and name.endswith(RULE_SUFFIXES):
                yield Path(root, name)


def _rule_roots(path: Path, located: Located, errors: list[LoadError]) -> list[DataPath]:
    """The data paths of the rule mappings in a file: the root, or each item of ``rules:``."""
    data = located.data
    if data is None:
        errors.append(_error(path, START, "empty file: expected a rule, or 'rules:' with a list of rules"))
        return []
    if not isinstance(data, dict):
        message = f"expected a rule mapping, or 'rules:' with a list of rules, got {show(data)}"
        errors.append(_error(path, located.value_mark(()), message))
        return []
    if "rules" not in data:
        return [()]
    for key in data:
        if key != "rules":
            message = f"unknown key {str(key)!r} next to 'rules' (put it inside a rule of the list)"
            errors.append(_error(path, located.key_mark((key,)), message))
    if not isinstance(data["rules"], list):
        message = f"'rules' must be a list of rules, got {show(data['rules'])}"
        errors.append(_error(path, located.value_mark(("rules",)), message))
        return []
    roots: list[DataPath] = []
    for index, item in enumerate(data["rules"]):
        if isinstance(item, dict):
            roots.append(("rules", index))
        else:
            message = f"a rule must be a mapping, got {show(item)}"
            errors.append(_error(path, located.value_mark(("rules", index)), message))
    return roots


def _load_rule(
    path: Path,
    located: Located,
    root: DataPath,
    config: Config | None,
    names: dict[str, tuple[Path, Mark]],
    errors: list[LoadError],
) -> Rule | None:
    """The rule at ``root``, or None with every reason in ``errors``."""
    raw = located.at(root)
    before = len(errors)
    source = raw.get("source")
    if config is not None and isinstance(source, str) and source not in config.sources:
        defined = ", ".join(sorted(config.sources)) or "none"
        mark = located.value_mark((*root, "source"))
        errors.append(_error(path, mark, f"unknown source {source!r} (defined: {defined})"))
    name = raw.get("name")
    if isinstance(name, str):
        mark = located.value_mark((*root, "name"))
        if name in names:
            first, at = names[name]
            message = f"duplicate rule name {name!r} (first defined at {first}:{at.line}:{at.col})"
            errors.append(_error(path, mark, message))
        else:
            names[name] = (path, mark)
    try:
        # references.py resolves a relative 'baseline:' against the rule file's folder through this context.
        context = {
            "base_dir": path.parent,
            "flapping": config.flapping if config is not None else None,
            "redact": config.evidence.redact if config is not None else None,
        }
        rule = Rule.model_validate(raw, context=context)
    except ValidationError as exc:
        errors.extend(_error(path, p.mark, p.message) for p in explain(exc, Rule, located, root))
        return None
    # A mistake found while parsing (a duplicate key) also keeps the rule out: it is ambiguous.
    parse_problems = [p for p in located.problems if p.at[: len(root)] == root]
    return rule if len(errors) == before and not parse_problems else None

"""Template mistakes as ``watcher check`` lists them: ``path:line:col: message``.

Templates are checked ahead of time so that a typo is found at review, not in the middle of an
incident (at send time a broken template falls back to the default one, with a warning): the
template files (every one of the configured folder and of the defaults), the rules' annotations
and template overrides, and the receivers' template overrides. Unknown variables, unknown filters,
syntax errors and missing files are reported where they are written: a template file at its line,
an annotation or an override at its value in the rule file or ``watcher.yaml``.

The daemon checks its rules the same way at start and at each reload (``rule_errors``): the
rule runs (rendering never blocks a notification), and the mistake is logged and raises the
``watcher:rules-invalid`` alert until it is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, nodes

from watcher.config import Config
from watcher.rules.loader import LoadError, RuleSet
from watcher.rules.models import Rule
from watcher.rules.positions import START, DataPath, Located, Mark, YamlSyntaxError, parse
from watcher.templates import DEFAULT_FOLDER, TemplateProblem, Templates


def template_errors(config: Config, config_path: Path, ruleset: RuleSet) -> list[LoadError]:
    """Every template mistake of a loaded configuration and its valid rules."""
    templates = Templates(config.templates, ruleset.rules, config.sources)
    errors = [_in_file(config.templates, problem) for problem in templates.check()]
    config_file = _positions(config_path)
    for name, receiver in config.receivers.items():
        at: DataPath = ("receivers", name, "templates")
        errors += _overrides(templates, receiver.templates.items(), config_path, config_file, at)
    errors += rule_errors(templates, ruleset.rules, ruleset.files)
    return sorted(set(errors))


def rule_errors(templates: Templates, rules: Iterable[Rule], files: Mapping[str, Path]) -> list[LoadError]:
    """The mistakes in ``rules``' annotations and template overrides, at their place in the file
    (which is only read again for a rule that has one). Each distinct annotation and template is
    checked once: 1,000 rules mostly share a few (the check compiles each, ~1 ms)."""

    @cache
    def annotation(key: str, source: str) -> list[TemplateProblem]:
        return templates.check_annotation(key, source) + sandbox_refusals(key, source)

    @cache
    def template(name: str) -> list[TemplateProblem]:
        return templates.check([name])

    positions = cache(_positions)  # a file of many rules with one mistake each is parsed once
    errors: list[LoadError] = []
    for rule in rules:
        annotations = {key: annotation(key, source) for key, source in rule.annotations.items()}
        overrides = [name for name in rule.templates.values() if template(name)]
        if not overrides and not any(annotations.values()):
            continue
        path = files[rule.name]
        located = positions(path)
        root = _rule_root(located, rule.name)
        for key, problems in annotations.items():
            mark = _mark(located, (*root, "annotations", key))
            errors += [
                LoadError(path, mark.line, mark.col, f"annotation {key!r}: {p.message}") for p in problems
            ]
        errors += _overrides(templates, rule.templates.items(), path, located, (*root, "templates"))
    return sorted(set(errors))


_EVERY_OBJECT_HAS = frozenset(dir(object()))


def sandbox_refusals(name: str, source: str) -> list[TemplateProblem]:
    """Attributes the template sandbox refuses on every value (``{{ ''.__class__ }}``): such an
    annotation can never render, so it is a mistake to report, not a render-time surprise."""
    try:
        ast = Environment().parse(source)
    except TemplateSyntaxError:
        return []  # reported by Templates.check_annotation
    return [
        TemplateProblem(
            name, node.lineno, f"the template sandbox refuses attribute {node.attr!r}: it never renders"
        )
        for node in ast.find_all(nodes.Getattr)
        if node.attr.startswith("_") and node.attr in _EVERY_OBJECT_HAS
    ]


def _overrides(
    templates: Templates,
    overrides: Iterable[tuple[str, str]],
    path: Path,
    located: Located | None,
    at: DataPath,
) -> list[LoadError]:
    errors = []
    for key, name in overrides:
        mark = _mark(located, (*at, key))
        errors += [LoadError(path, mark.line, mark.col, str(problem)) for problem in templates.check([name])]
    return errors


def _in_file(folder: Path, problem: TemplateProblem) -> LoadError:
    configured = folder / problem.template
    path = configured if configured.is_file() else DEFAULT_FOLDER / problem.template
    return LoadError(_shown(path), problem.line or 1, 1, problem.message)


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _positions(path: Path) -> Located | None:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlSyntaxError):
        return None  # already reported by the loader; then the mistakes are shown at 1:1


def _rule_root(located: Located | None, name: str) -> DataPath:
    """The data path of rule ``name`` in its file: the root, or its entry of ``rules:``."""
    if located is None or not isinstance(located.data, dict) or "rules" not in located.data:
        return ()
    entries = located.data["rules"]
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, dict) and entry.get("name") == name:
            return ("rules", index)
    return ()


def _mark(located: Located | None, path: DataPath) -> Mark:
    return located.values.get(path, START) if located is not None else START

"""YAML parsed into plain Python data that remembers where every key and value was written.

PyYAML's ``safe_load`` forgets positions, so the loader composes the node graph itself and
builds the data from it, recording the 1-based ``line:col`` of each key and value under its
*data path* (the tuple of mapping keys and list indexes that reaches it). Validation errors,
which pydantic reports as such paths, can then be shown where the user wrote the mistake.

The document is composed by ``reader.compose`` (bounded: depth, aliases, integers; libyaml when
PyYAML has it, the pure Python reader's words for a text it refuses), then built here. Expanding
an alias records the positions of the anchored values again under the alias's path, which is why
the reader bounds what aliases may add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from watcher.rules.reader import LIMITS, START, Limits, Mark, Node, ReadError, compose

__all__ = ["START", "DataPath", "Located", "Mark", "Problem", "YamlSyntaxError", "parse"]

DataPath = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    """A mistake found while reading the YAML itself, before any validation."""

    mark: Mark
    message: str
    at: DataPath = ()
    """the data path of the mapping or list the mistake is in"""


@dataclass
class Located:
    """A parsed YAML document (``data`` is None for an empty one) and the positions in it."""

    data: Any = None
    keys: dict[DataPath, Mark] = field(default_factory=dict)
    values: dict[DataPath, Mark] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def at(self, path: DataPath) -> Any:
        """The data at ``path``, or None if nothing is written there."""
        value = self.data
        for step in path:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def key_mark(self, path: DataPath) -> Mark:
        """Where the key naming ``path`` was written; for the root, or a list item, its value."""
        if path in self.keys:
            return self.keys[path]
        return self.value_mark(path)

    def value_mark(self, path: DataPath) -> Mark:
        """Where the value at ``path`` starts, or the nearest enclosing value that exists."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return START


class YamlSyntaxError(Exception):
    """The text cannot be read as a document: not YAML, or past one of the reader's ``Limits``.
    ``problem`` says where and what, in the user's terms."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def parse(text: str, limits: Limits = LIMITS) -> Located:
    """Parse one YAML document; raise ``YamlSyntaxError`` when the text is not valid YAML or
    passes a limit. Nothing else is raised, whatever the text.

    Duplicate keys (which PyYAML would silently resolve to the last one) and non-scalar keys
    are recorded in ``problems`` rather than raised, so every other mistake is still reported.
    """
    try:
        root = compose(text, limits)
    except ReadError as exc:
        raise YamlSyntaxError(Problem(exc.mark, exc.message)) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_syntax_problem(exc)) from None
    except yaml.YAMLError as exc:  # unmarked: the reader refused the text as a whole
        raise YamlSyntaxError(Problem(START, f"invalid YAML: {exc}")) from None
    located = Located()
    if root is not None:
        located.data = _build(root, (), located)
    return located


def _syntax_problem(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context:
        where = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f" ({exc.context}{where})"
    return Problem(Mark(mark.line + 1, mark.column + 1) if mark else START, message)


def _build(node: Node, path: DataPath, located: Located) -> Any:
    """The data of ``node``, recording where each value (and key) under ``path`` was written.
    Recursive, which is safe: the reader refuses documents nested deeper than its limit."""
    located.values[path] = node.mark
    if node.items is None:
        return node.value
    if node.mapping:
        return _build_mapping(node, path, located)
    return [_build(child, (*path, index), located) for index, child in enumerate(node.items)]


def _build_mapping(node: Node, path: DataPath, located: Located) -> dict[Any, Any]:
    merged, own = _flatten(node)
    out: dict[Any, Any] = {}
    written: set[Any] = set()  # keys written in this mapping itself; merged ones may be overridden
    for pairs, is_own in ((merged, False), (own, True)):
        for key_node, value_node in pairs:
            if key_node.items is not None:
                message = "a key must be a plain value, not a mapping or a list"
                located.problems.append(Problem(key_node.mark, message, path))
                continue
            key = key_node.value
            if key in written:
                first = located.keys[(*path, key)]
                message = f"duplicate key {key!r} (first at line {first.line})"
                located.problems.append(Problem(key_node.mark, message, path))
                continue
            if is_own:
                written.add(key)
            located.keys[(*path, key)] = key_node.mark
            out[key] = _build(value_node, (*path, key), located)
    return out


Pairs = list[tuple[Node, Node]]


def _flatten(node: Node) -> tuple[Pairs, Pairs]:
    """The pairs merge keys (``<<: *defaults``) bring in, and the mapping's own, the way PyYAML's
    ``flatten_mapping`` orders them: of several merged mappings, the first one wins."""
    assert node.items is not None
    merged: Pairs = []
    own: Pairs = []
    for key, value in node.items:
        if not key.merge:
            own.append((key, value))
            continue
        sources = value.items if value.items is not None and not value.mapping else [value]
        for source in reversed(sources):
            if source.items is None or not source.mapping:
                message = "invalid YAML: '<<' merges a mapping or a list of mappings, not a single value"
                raise YamlSyntaxError(Problem(source.mark, message))
            inner, inner_own = _flatten(source)
            merged.extend(inner + inner_own)
    return merged, own

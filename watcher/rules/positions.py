"""YAML parsed into plain Python data that remembers where every key and value was written.

PyYAML's ``safe_load`` forgets positions, so the loader composes the node graph itself and
builds the data from it, recording the 1-based ``line:col`` of each key and value under its
*data path* (the tuple of mapping keys and list indexes that reaches it). Validation errors,
which pydantic reports as such paths, can then be shown where the user wrote the mistake.

The text is read with libyaml (``CSafeLoader``) when PyYAML has it: 4-5x faster than the pure
Python reader and a quarter less garbage, which matters for 1,000 rules loaded at start and on
every reload. Its line and column marks are the same; its error messages are not, so a text
libyaml refuses is read again by the pure Python reader, whose messages the tests pin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

DataPath = tuple[Any, ...]
_MERGE = "tag:yaml.org,2002:merge"
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column in a YAML text."""

    line: int
    col: int


START = Mark(1, 1)


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
    """The text is not YAML. ``problem`` says where and what, in the user's terms."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def parse(text: str) -> Located:
    """Parse one YAML document; raise ``YamlSyntaxError`` when the text is not valid YAML.

    Duplicate keys (which PyYAML would silently resolve to the last one) and non-scalar keys
    are recorded in ``problems`` rather than raised, so every other mistake is still reported.
    """
    if _FAST_LOADER is not None:
        try:
            return _parse(text, _FAST_LOADER)
        except YamlSyntaxError:
            pass  # the pure reader says what is wrong in its own words
    return _parse(text, yaml.SafeLoader)


def _parse(text: str, loader_class: type[yaml.SafeLoader]) -> Located:
    loader = loader_class(text)
    located = Located()
    try:
        node = loader.get_single_node()
        if node is not None:
            located.data = _build(loader, node, (), located, frozenset())
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_syntax_problem(exc)) from exc
    finally:
        loader.dispose()
    return located


def _syntax_problem(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context:
        where = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f" ({exc.context}{where})"
    return Problem(_mark(mark) if mark else START, message)


def _mark(mark: yaml.Mark) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


def _build(
    loader: yaml.SafeLoader, node: Node, path: DataPath, located: Located, stack: frozenset[int]
) -> Any:
    located.values[path] = _mark(node.start_mark)
    if id(node) in stack:
        message = "an alias may not refer to its own parent"
        located.problems.append(Problem(_mark(node.start_mark), message, path))
        return None
    inner = stack | {id(node)}
    if isinstance(node, MappingNode):
        return _build_mapping(loader, node, path, located, inner)
    if isinstance(node, SequenceNode):
        return [
            _build(loader, child, (*path, index), located, inner) for index, child in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def _build_mapping(
    loader: yaml.SafeLoader, node: MappingNode, path: DataPath, located: Located, stack: frozenset[int]
) -> dict[Any, Any]:
    own = {id(key) for key, _ in node.value if key.tag != _MERGE}
    loader.flatten_mapping(node)  # resolves merge keys (<<: *defaults) the way safe_load does
    out: dict[Any, Any] = {}
    written: set[Any] = set()  # keys written in this mapping itself; merged ones may be overridden
    for key_node, value_node in node.value:
        mark = _mark(key_node.start_mark)
        if isinstance(key_node, MappingNode | SequenceNode):
            message = "a key must be a plain value, not a mapping or a list"
            located.problems.append(Problem(mark, message, path))
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in written:
            first = located.keys[(*path, key)]
            message = f"duplicate key {key!r} (first at line {first.line})"
            located.problems.append(Problem(mark, message, path))
            continue
        if id(key_node) in own:
            written.add(key)
        located.keys[(*path, key)] = mark
        out[key] = _build(loader, value_node, (*path, key), located, stack)
    return out

"""Turn pydantic validation errors into short messages placed where the user wrote the mistake.

Pydantic reports each error with a ``loc`` (field names, dict keys, list indexes, and for
unions the name of the branch tried) and a generic message ("Input should be a valid
integer, ..."). ``explain`` walks that ``loc`` through the model's types and the parsed data
together, so it knows which steps are data (and so have a position) and which model a
misspelt key was meant for (and so what to suggest), and rewrites the message in the words
of a rule file: ``unknown key 'windw' (did you mean 'window'?)``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from watcher.rules.positions import DataPath, Located, Mark, Problem

_NOUNS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "path_type": "a file path",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_PREFIXES = ("Value error, ", "Assertion failed, ")


@dataclass(frozen=True)
class _Spot:
    """Where a ``loc`` lands: the data path it names, and the model whose field it looked up last.

    ``fork`` is the first union on the way (its data path and the branch tried) and ``expected``
    the types of every branch, when each failed on the value's type alone.
    """

    path: DataPath
    owner: type[BaseModel] | None
    on_key: bool
    fork: tuple[DataPath, Any] | None = None
    expected: tuple[str, ...] = ()
    secret: bool = False  # the value is a SecretStr: never quoted in a message


def explain(
    exc: ValidationError, model: type[BaseModel], located: Located, root: DataPath = ()
) -> list[Problem]:
    """One problem per distinct mistake in ``exc``, for data validated as ``model`` at ``root``."""
    problems: list[Problem] = []
    for error, spot in _one_branch_each([(error, _walk(model, error["loc"])) for error in exc.errors()]):
        mark, message = _describe(error, spot, located, root)
        problem = Problem(mark, message)
        if problem not in problems:
            problems.append(problem)
    return problems


# --------------------------------------------------------------------------- walking loc


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> _Spot:
    path: list[Any] = []
    owner: type[BaseModel] | None = None
    on_key = False
    fork: tuple[DataPath, Any] | None = None
    kind: Any = model
    for step in loc:
        kind = _unwrap(kind)
        branch = _union_branch(kind, step)
        if branch is not None:
            kind = branch  # a union branch name: says which type was tried, names no data
            fork = fork or (tuple(path), step)
            continue
        if step == "[key]":
            on_key = True
            args = get_args(kind)
            kind = args[0] if args else Any
            continue
        kind, owner = _step_type(kind, step, owner)
        path.append(step)
    return _Spot(tuple(path), owner, on_key, fork, secret=_unwrap(kind) is SecretStr)


def _one_branch_each(spots: list[tuple[ErrorDetails, _Spot]]) -> list[tuple[ErrorDetails, _Spot]]:
    """A union reports the errors of every branch it tried; keep those of the branch that got
    furthest into the value (the likeliest intent), or, when every branch failed on the value's
    type alone, one error naming all the types."""
    spots = list(spots)
    forks: dict[DataPath, dict[Any, list[int]]] = {}
    for index, (_, spot) in enumerate(spots):
        if spot.fork is not None:
            forks.setdefault(spot.fork[0], {}).setdefault(spot.fork[1], []).append(index)
    dropped: set[int] = set()
    for point, branches in forks.items():
        if len(branches) < 2:
            continue
        indexes = [i for members in branches.values() for i in members]
        if all(spots[i][0]["type"] in _NOUNS and spots[i][1].path == point for i in indexes):
            expected = tuple(dict.fromkeys(_NOUNS[spots[i][0]["type"]] for i in indexes))
            spots[indexes[0]] = (spots[indexes[0]][0], replace(spots[indexes[0]][1], expected=expected))
            dropped.update(indexes[1:])
            continue
        best = max(branches.values(), key=lambda members: max(len(spots[i][1].path) for i in members))
        dropped.update(i for i in indexes if i not in best)
    return [pair for index, pair in enumerate(spots) if index not in dropped]


def _step_type(kind: Any, step: Any, owner: type[BaseModel] | None) -> tuple[Any, type[BaseModel] | None]:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        for name, info in kind.model_fields.items():
            if step in (name, info.alias):
                return info.annotation, kind
        return Any, kind
    origin, args = get_origin(kind), get_args(kind)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1], owner
    if origin in (list, tuple, set, frozenset) and args:
        return args[0], owner
    return Any, owner


def _unwrap(kind: Any) -> Any:
    """Strip ``Annotated`` and the ``None`` of ``X | None`` (pydantic adds no loc step for either)."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
            continue
        members = _members(kind)
        if len(members) == 1:
            kind = members[0]
            continue
        return kind


def _members(kind: Any) -> list[Any]:
    if get_origin(kind) in (Union, types.UnionType):
        return [member for member in get_args(kind) if member is not type(None)]
    return []


def _union_branch(kind: Any, step: Any) -> Any:
    """The member of a union that ``step`` names: its tag value (tagged unions) or its type name."""
    for member in _members(kind):
        plain = _unwrap(member)
        if getattr(plain, "__name__", None) == step or step in _tags(plain):
            return member
    return None


def _tags(kind: Any) -> set[Any]:
    if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
        return set()
    found: set[Any] = set()
    for info in kind.model_fields.values():
        if get_origin(info.annotation) is Literal:
            found.update(get_args(info.annotation))
    return found


# --------------------------------------------------------------------------- messages


def _describe(error: ErrorDetails, spot: _Spot, located: Located, root: DataPath) -> tuple[Mark, str]:
    kind, path = error["type"], spot.path
    full = (*root, *path)
    if kind == "extra_forbidden":
        return located.key_mark(full), _unknown_key(path[-1], spot.owner, located.at(full[:-1]))
    if kind == "missing":
        return _mapping_mark(located, full[:-1], root), f"missing required key '{path[-1]}'"
    if kind == "union_tag_not_found":
        key = _ctx(error, "discriminator").strip("'")
        return _mapping_mark(located, full, root), f"missing required key '{key}'"
    if kind == "union_tag_invalid":
        tags = _ctx(error, "expected_tags").replace("'", "")
        key = _ctx(error, "discriminator").strip("'")
        message = f"unknown {key} {_ctx(error, 'tag')!r} (expected one of: {tags})"
        return located.value_mark((*full, key)), message
    if kind in ("value_error", "assertion_error"):
        return _value_error(error, located, full, root)
    if spot.on_key:
        return located.key_mark(full), _key_message(error, _name(path[:-1]))
    # Quote the value as written in the file: the input pydantic saw may hold an interpolated secret.
    written = located.at(full) if full in located.values else error["input"]
    shown = "a secret (not shown)" if spot.secret else show(written)
    if spot.expected:
        return located.value_mark(full), f"'{_name(path)}' must be {' or '.join(spot.expected)}, got {shown}"
    return located.value_mark(full), _value_message(error, _name(path), shown)


def _value_error(error: ErrorDetails, located: Located, full: DataPath, root: DataPath) -> tuple[Mark, str]:
    message = _clean(error["msg"])
    if not isinstance(located.at(full), dict):
        return located.value_mark(full), message
    # A check over a whole mapping (one detector, one signal kind, a route naming a receiver):
    # point at a value the message quotes if one is written there, else at a key it quotes,
    # else at the mapping itself.
    inside = [path for path in located.values if path[: len(full)] == full and len(path) > len(full)]
    for word in re.findall(r"'([^']+)'", message):
        for path in inside:
            if located.at(path) == word:
                return located.values[path], message
        for path in inside:
            if path[-1] == word and path in located.keys:
                return located.keys[path], message
    return _mapping_mark(located, full, root), message


def _mapping_mark(located: Located, full: DataPath, root: DataPath) -> Mark:
    """A mapping is shown at the key that introduces it, or where it starts if it is the root."""
    return located.value_mark(full) if len(full) <= len(root) else located.key_mark(full)


_PERCENTILE = re.compile(r"^p(\d{2,3})$")
_STATS = ("avg", "mean", "min", "max", "sum")


def _signal_alias(key: str) -> str | None:
    """The signal a common name from other tools means (``p99`` in Prometheus and Datadog)."""
    if found := _PERCENTILE.match(key):
        digits = found.group(1)
        q = digits if len(digits) == 2 else f"{digits[:2]}.{digits[2:]}"
        return f"percentile: {{field: FIELD, q: {q}}}"
    if key == "median":
        return "percentile: {field: FIELD, q: 50}"
    if key in _STATS:
        return f"stat: {{field: FIELD, fn: {'avg' if key == 'mean' else key}}}"
    if key in ("distinct", "unique", "uniques"):
        return "cardinality: {field: FIELD}"
    if key in ("rate", "share", "error_rate"):
        return "ratio: {of: FILTER}"
    return None


def _unknown_key(key: Any, owner: type[BaseModel] | None, container: Any) -> str:
    noun = "key" if isinstance(container, dict) else "value"
    message = f"unknown {noun} {str(key)!r}"
    if owner is None:
        return message
    if owner.__name__ == "Signal" and (alias := _signal_alias(str(key))) is not None:
        return f"{message}: write {alias}"
    # 0.7 rather than difflib's 0.6: 'windw' -> 'window', but 'foo' is not offered 'for'.
    close = difflib.get_close_matches(str(key), _field_names(owner), n=1, cutoff=0.7)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    parents = [name for name, child in _child_models(owner) if str(key) in _field_names(child)]
    if parents:
        return f"{message} (it belongs under {' or '.join(repr(p) for p in parents)})"
    return message


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _child_models(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    children = []
    for name, info in model.model_fields.items():
        kind = _unwrap(info.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            children.append((info.alias or name, kind))
    return children


def _key_message(error: ErrorDetails, name: str) -> str:
    if error["type"] == "string_pattern_mismatch":
        return f"key {error['input']!r} in '{name}' must match {_ctx(error, 'pattern')}"
    return f"bad key {error['input']!r} in '{name}': {_clean(error['msg'])}"


def _value_message(error: ErrorDetails, name: str, got: str) -> str:
    kind = error["type"]
    if kind == "string_type" and isinstance(error["input"], bool | int | float):
        # YAML reads yes/no/on/off as booleans and 1.0 as a number; quotes keep them strings.
        return f"'{name}' must be a string, got {got} (put it in quotes)"
    if kind in _NOUNS:
        return f"'{name}' must be {_NOUNS[kind]}, got {got}"
    if kind in ("literal_error", "enum"):
        return f"'{name}' must be one of {_ctx(error, 'expected')}, got {got}"
    if kind == "string_pattern_mismatch":
        return f"'{name}' must match {_ctx(error, 'pattern')}, got {got}"
    if kind in _BOUNDS:
        bound = next(v for k, v in (error.get("ctx") or {}).items() if k in ("ge", "gt", "le", "lt"))
        return f"'{name}' must be {_BOUNDS[kind]} {show(bound)}, got {got}"
    if kind == "too_short":
        count = _ctx(error, "min_length")
        return f"'{name}' needs at least {count} item{'' if count == '1' else 's'}"
    return f"'{name}': {_clean(error['msg'])}"


def _clean(message: str) -> str:
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    if message[1:2].islower():  # "Input should be" -> "input should be", but leave "URL ..." alone
        return message[:1].lower() + message[1:]
    return message


def _ctx(error: ErrorDetails, key: str) -> str:
    return str((error.get("ctx") or {}).get(key, ""))


def _name(path: DataPath) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else str(step)
    return text or "value"


def show(value: Any) -> str:
    """A value as a rule file would spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)

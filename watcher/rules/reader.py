"""The one reader for every file watcher is given: rule files, ``watcher.yaml``, baseline profiles.

Those files are written by people and saved while the daemon runs, so nothing in them may crash
watcher or exhaust the machine. Every failure to read one is a ``ReadError`` with a 1-based line
and column, which the loader turns into a ``path:line:col`` error like any other mistake:

- the file itself: missing, a folder, unreadable, not UTF-8, larger than ``Limits.max_bytes``;
- the text: a control character YAML does not allow (found here, with its position, because
  libyaml reports it in bytes and the pure reader in characters);
- the YAML document (``compose``): nesting deeper than ``Limits.max_depth``, aliases expanding it
  by more than ``Limits.max_alias_nodes`` values (a "billion laughs" file of a few hundred bytes
  expands to billions), integers longer than ``Limits.max_int_digits`` digits, a scalar its tag
  cannot construct (``!!float x``).

``compose`` reads the YAML event stream itself instead of using PyYAML's composer: it measures
each anchored node (its size and height) as it closes, so an alias that would expand the document
past the budget is refused at the alias, before anything is expanded; it builds no recursion, so
no document can raise ``RecursionError``; and it keeps one small node per value (PyYAML's keeps two
``Mark`` objects each), which is most of the memory of a large rule file.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml

_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
# The characters YAML allows in a document (PyYAML's Reader.NON_PRINTABLE, negated).
_NOT_ALLOWED = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column in a text."""

    line: int
    col: int


START = Mark(1, 1)


@dataclass(frozen=True)
class Limits:
    """How much one file may ask of watcher. Generous for any hand-written file (the shipped rules
    nest 7 levels deep and use no aliases); each is reported with the value that passed it."""

    max_bytes: int = 16 * 1024 * 1024
    """a 16 MiB rule file holds some 50,000 rules and is checked in about 10 s"""
    max_depth: int = 50
    """mappings and lists inside each other, aliases expanded"""
    max_alias_nodes: int = 100_000
    """values that aliases may add to a document (merge keys included)"""
    max_int_digits: int = 18
    """every integer with at most 18 digits fits the 64 bits the stores use"""


LIMITS = Limits()
_UNSEEN = object()


class ReadError(Exception):
    """A file, or the document in it, cannot be read; ``mark`` says where."""

    def __init__(self, message: str, mark: Mark = START) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class MissingFileError(ReadError):
    """The file does not exist (a baseline says so in its own words)."""


# --------------------------------------------------------------------------- files


def read_text(path: Path, limits: Limits = LIMITS) -> str:
    """The file's text; raise ``ReadError`` when it cannot be read, is too large or not UTF-8."""
    try:
        with path.open("rb") as handle:
            data = _read_at_most(handle, limits.max_bytes + 1)
    except IsADirectoryError:
        raise ReadError("cannot read file: it is a folder") from None
    except FileNotFoundError as exc:
        raise MissingFileError(f"cannot read file: {exc.strerror or exc}") from None
    except OSError as exc:
        raise ReadError(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise ReadError(f"file too large: more than {_size(limits.max_bytes)} (split it into several files)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        mark = _mark_at(data[: exc.start].decode("utf-8"), exc.start)
        message = f"cannot read file: it is not UTF-8 text (byte 0x{data[exc.start]:02x})"
        raise ReadError(message, mark) from None


def _read_at_most(handle: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes, in pieces the size the file says it has: ``read(count)`` would
    allocate all of ``count`` first, and a FIFO or ``/dev/zero`` says nothing true of its size."""
    expected = os.fstat(handle.fileno()).st_size
    pieces: list[bytes] = []
    left = count
    while left > 0:
        piece = handle.read(min(left, max(expected + 1, 64 * 1024)))
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def check_characters(text: str) -> None:
    """Raise ``ReadError`` at the first character a YAML document may not hold."""
    found = _NOT_ALLOWED.search(text)
    if found is not None:
        code = ord(found.group())
        message = f"invalid YAML: control character U+{code:04X} is not allowed"
        if code < 0x100:
            message += f' (write it as "\\x{code:02x}" inside double quotes)'
        raise ReadError(message, _mark_at(text, found.start()))


def _mark_at(text: str, index: int) -> Mark:
    line_start = text.rfind("\n", 0, index) + 1
    return Mark(text.count("\n", 0, index) + 1, index - line_start + 1)


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:g} MiB" if count >= 1024 * 1024 else f"{count:,} bytes"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect no cycles while a file becomes objects: the objects it allocates are all alive, and
    the collector, run again and again over them, took 31 of the 34 s that composing 34,000 rules
    took. Whatever cycles they leave are collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --------------------------------------------------------------------------- YAML


class Node:
    """One value of a composed document: a scalar (``items`` None, ``value`` constructed) or a
    mapping (``items`` a list of key/value pairs) or a list (``items`` a list of nodes)."""

    __slots__ = ("items", "mapping", "mark", "merge", "value")

    def __init__(self, mark: Mark, value: Any = None, items: list[Any] | None = None, mapping: bool = False):
        self.mark, self.value, self.items, self.mapping, self.merge = mark, value, items, mapping, False


class _Open:
    """A mapping or list being composed: its node and, so far, its size and height."""

    __slots__ = ("anchor", "height", "key", "node", "size")

    def __init__(self, node: Node, anchor: str | None) -> None:
        self.node, self.anchor, self.size, self.height = node, anchor, 1, 1
        self.key: Node | None = None  # a mapping's key waiting for its value

    def append(self, child: Node) -> None:
        items = self.node.items
        assert items is not None
        if not self.node.mapping:
            items.append(child)
        elif self.key is None:
            self.key = child
        else:
            items.append((self.key, child))
            self.key = None


def compose(text: str, limits: Limits = LIMITS) -> Node | None:
    """The document's root node (None for an empty text); raise ``ReadError`` or
    ``yaml.MarkedYAMLError`` (the text is not YAML, in the words of the reader given)."""
    check_characters(text)
    if _FAST_LOADER is not None:
        try:
            return _Composer(text, _FAST_LOADER, limits).document()
        except yaml.MarkedYAMLError:
            pass  # the pure reader says what is wrong in its own words
    return _Composer(text, yaml.SafeLoader, limits).document()


class _Composer:
    def __init__(self, text: str, loader_class: type[yaml.SafeLoader], limits: Limits) -> None:
        self.loader: Any = loader_class(text)  # PyYAML's event API is untyped
        self.limits = limits
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Node, int, int] | None] = {}  # None: still open
        self.expanded = 0
        self.tags: dict[tuple[str, Any], str] = {}
        self.values: dict[tuple[str, str], Any] = {}
        self.root: Node | None = None

    def document(self) -> Node | None:
        try:
            events = self.loader.get_event
            events()  # stream start
            if isinstance(self.loader.peek_event(), yaml.StreamEndEvent):
                return None
            events()  # document start
            self._events()
            if not isinstance(self.loader.peek_event(), yaml.StreamEndEvent):
                raise ReadError(
                    "invalid YAML: expected a single document in the stream, but found another document",
                    _mark(events().start_mark),
                )
            return self.root
        finally:
            self.loader.dispose()

    def _events(self) -> None:
        """Every event of the document. One loop with the common case (a scalar without an
        anchor) written out: a 10 MB file has 1.6 million events."""
        events, stack, scalar, add = self.loader.get_event, self.stack, self._scalar, self._add
        while True:
            event = events()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.anchor is None and stack:
                    parent = stack[-1]
                    parent.size += 1
                    parent.height = parent.height if parent.height > 1 else 2
                    parent.append(scalar(event))
                else:
                    add(scalar(event), 1, 1, event.anchor)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self._open(event, kind is yaml.MappingStartEvent)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                add(done.node, done.size, done.height, done.anchor)
            elif kind is yaml.AliasEvent:
                self._alias(event)
            else:  # the document's end
                return

    def _open(self, event: Any, mapping: bool) -> None:
        mark = _mark(event.start_mark)
        if len(self.stack) >= self.limits.max_depth:
            raise ReadError(f"nested too deeply: more than {self.limits.max_depth} levels", mark)
        self._anchor(event.anchor, mark)
        self.stack.append(_Open(Node(mark, items=[], mapping=mapping), event.anchor))
        if event.anchor is not None:
            self.anchors[event.anchor] = None

    def _alias(self, event: Any) -> None:
        mark = _mark(event.start_mark)
        if event.anchor not in self.anchors:
            raise ReadError(f"invalid YAML: found undefined alias {event.anchor!r}", mark)
        target = self.anchors[event.anchor]
        if target is None:
            raise ReadError(f"invalid YAML: the alias *{event.anchor} refers to its own parent", mark)
        node, size, height = target
        self.expanded += size
        if self.expanded > self.limits.max_alias_nodes:
            raise ReadError(
                f"aliases expand this document past {self.limits.max_alias_nodes:,} values "
                f"(the alias *{event.anchor} adds {size:,}): write the values out or use fewer aliases",
                mark,
            )
        if len(self.stack) + height > self.limits.max_depth:
            message = f"nested too deeply: more than {self.limits.max_depth} levels with *{event.anchor}"
            raise ReadError(message, mark)
        self._add(node, size, height, None)

    def _anchor(self, anchor: str | None, mark: Mark) -> None:
        if anchor is not None and anchor in self.anchors:
            raise ReadError(f"invalid YAML: duplicate anchor &{anchor}", mark)

    def _add(self, node: Node, size: int, height: int, anchor: str | None) -> None:
        if anchor is not None:
            if node.items is None:
                self._anchor(anchor, node.mark)
            self.anchors[anchor] = (node, size, height)
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        parent.size += size
        if height >= parent.height:
            parent.height = height + 1
        parent.append(node)

    def _scalar(self, event: Any) -> Node:
        start = event.start_mark
        mark = Mark(start.line + 1, start.column + 1)
        tag = event.tag
        if tag is None or tag == "!":
            found = self.tags.get((event.value, event.implicit))
            if found is None:
                found = self.tags[event.value, event.implicit] = self.loader.resolve(
                    yaml.ScalarNode, event.value, event.implicit
                )
            tag = found
        node = Node(mark)
        if tag == MERGE_TAG:  # a merge key; anywhere else it is the text '<<'
            node.merge, node.value = True, event.value
            return node
        key = (tag, event.value)
        value = self.values.get(key, _UNSEEN)
        if value is _UNSEEN:  # scalars are immutable: each distinct one is constructed once
            value = self.values[key] = self._construct(tag, event, mark)
        node.value = value
        return node

    def _construct(self, tag: str, event: Any, mark: Mark) -> Any:
        text = event.value
        if tag == _INT_TAG:
            digits = sum(char.isdigit() for char in text)
            if digits > self.limits.max_int_digits:
                message = f"integer too large: {digits:,} digits (at most {self.limits.max_int_digits})"
                raise ReadError(message, mark)
        node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark, style=event.style)
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError:
            raise
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError):
            short = tag.replace("tag:yaml.org,2002:", "!!")
            raise ReadError(f"invalid YAML: {_shown(text)} is not a valid {short}", mark) from None
        finally:
            self.loader.constructed_objects.pop(node, None)
        return value


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _mark(mark: Any) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)

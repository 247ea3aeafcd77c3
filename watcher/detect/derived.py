"""What a detector derives from a rule's settings alone, derived once per settings object.

A rule's specs are frozen pydantic models that live as long as the rule is loaded, but they are
not hashable (a baseline profile holds dicts), so ``functools.cache`` cannot key on them. A
detector evaluates the same rule every minute (a backtest: thousands of times), and rebuilt its
bins, labels and aggregates each time: ``derived`` keeps the value per object, dropped when the
object is (a reload makes new ones, so an edited rule is never served its old value).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

Settings = TypeVar("Settings")
Value = TypeVar("Value")


class derived(Generic[Settings, Value]):  # noqa: N801 -- used as a decorator, like functools.cache
    """``derive(settings)`` computed once per live ``settings`` object (keyed by identity). The
    value is shared: callers must not change it."""

    def __init__(self, derive: Callable[[Settings], Value]) -> None:
        self._derive = derive
        self._values: dict[int, tuple[weakref.ref[Settings], Value]] = {}
        self.__doc__ = derive.__doc__

    def __call__(self, settings: Settings) -> Value:
        key = id(settings)
        kept = self._values.get(key)
        if kept is not None and kept[0]() is settings:
            return kept[1]
        value = self._derive(settings)
        self._values[key] = (weakref.ref(settings, lambda _: self._forget(key)), value)
        return value

    def _forget(self, key: int) -> None:
        kept = self._values.get(key)
        if kept is not None and kept[0]() is None:
            del self._values[key]

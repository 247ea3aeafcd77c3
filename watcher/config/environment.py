"""``${ENV_VAR}`` interpolation of a parsed ``watcher.yaml``, before it becomes models.

Secrets stay out of the file: it names variables, and their values are read from the
environment when the file is loaded. Kept apart from the models because it works on the raw
YAML tree (every string, whatever key holds it), not on any model.

``${VAR}`` is required: unset or empty is an error (an empty token is a mistake made at
deploy time, found by ``watcher check`` rather than by the first alert). ``${VAR:-default}``
is optional: unset or empty gives the default, which may itself be empty (``${VAR:-}``).

Commands that need no secret (``incidents``, ``silence``, ``routes``) load the file inside
``secrets_deferred()``: a variable without a value is then left as written, and the receivers'
format checks let such a value pass (``unresolved``), so they run without the daemon's environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DEFERRED: ContextVar[bool] = ContextVar("watcher_secrets_deferred", default=False)


class MissingEnvError(ValueError):
    """A ``${VAR}`` with no value in the environment and no default."""


class EmptyEnvError(MissingEnvError):
    """A required ``${VAR}`` that is set to the empty string."""


@contextmanager
def secrets_deferred() -> Iterator[None]:
    """Within: variables without a value are left as ``${VAR}`` instead of being errors."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def unresolved(text: str) -> bool:
    """Whether ``text`` still holds a ``${VAR}``: left so by ``secrets_deferred`` (the command
    does not use it), or already reported as missing. Its format cannot be checked."""
    return _ENV.search(text) is not None


def interpolate(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return _ENV.sub(lambda match: _value(match, env), value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def _value(match: re.Match[str], env: Mapping[str, str]) -> str:
    name, default = match.group(1), match.group(2)
    found = env.get(name, "")
    if found:
        return found
    if default is not None:
        return default
    if _DEFERRED.get():
        return match.group(0)
    if name in env:
        raise EmptyEnvError(
            f"environment variable {name} is empty: set it, or write ${{{name}:-}} if it may be empty"
        )
    raise MissingEnvError(f"environment variable {name} is not set")

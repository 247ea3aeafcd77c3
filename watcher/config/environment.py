"""``${ENV_VAR}`` interpolation of a parsed ``watcher.yaml``, before it becomes models.

Secrets stay out of the file: it names variables, and their values are read from the
environment when the file is loaded. Kept apart from the models because it works on the raw
YAML tree (every string, whatever key holds it), not on any model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingEnvError(ValueError):
    """A ``${VAR}`` with no value in the environment and no default."""


def interpolate(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise MissingEnvError(f"environment variable {name} is not set")

        return _ENV.sub(substitute, value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value

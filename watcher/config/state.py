"""``state:``: where watcher keeps its durable state.

``path`` (the default, ``data/state.sqlite``) is a SQLite file: one node, the demo. ``url``
(``postgresql://user:password@host:5432/db``) keeps it in PostgreSQL instead, which the CLI can
reach from any machine. The URL's password never appears in a message (``where``, the model's
repr): write it as ``${WATCHER_STATE_PASSWORD}`` or the like to keep it out of the file too.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from watcher.config.base import ConfigModel
from watcher.state.url import is_postgres, redact


class StateConfig(ConfigModel):
    path: Path = Field(default=Path("data/state.sqlite"), description="the SQLite state file (without url)")
    url: str | None = Field(
        default=None,
        repr=False,
        description="postgresql://user:password@host:5432/db: keep the state in PostgreSQL instead",
    )

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, url: str | None) -> str | None:
        if url is not None and not is_postgres(url):
            raise ValueError("must be a postgresql://user:password@host:port/db URL (a file is 'path')")
        return url

    @property
    def where(self) -> str:
        """How messages name the state: the SQLite file, or the URL without its password."""
        return str(self.path) if self.url is None else redact(self.url)

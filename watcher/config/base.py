"""The one base of every ``watcher.yaml`` model, shared by the modules of ``watcher.config``.

Frozen, so a loaded config can be handed to every stage (and swapped whole on reload) without
anyone changing it under another; ``extra="forbid"``, so a misspelt key is an error rather than
a silently ignored setting; ``populate_by_name``, so fields aliased after Python keywords
(``from``, ``continue``) can also be set by their attribute names in code and tests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

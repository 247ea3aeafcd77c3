"""``ha:``: several ``watcher run`` replicas sharing one PostgreSQL state.

Without ``ha`` a daemon takes the state's one-daemon lock, as before. With it, every replica
heartbeats a row and holds leases on partitions of the rules (``watcher.process.partitions``):
``replicas`` is how many should be alive (fewer raises ``watcher:replicas-missing``),
``partitions`` how finely the rules are split (every replica must use the same number),
``heartbeat`` how often a replica renews its leases, ``lease`` how long a replica that stopped
renewing keeps its partitions before another takes them over. The defaults are Kibana's task
manager's (a heartbeat every 10 s, alive for 30 s).

``problems`` holds the checks that need the whole config (the state, the sources), each with the
place of watcher.yaml it is about, so ``watcher check`` and ``watcher run`` print it positioned.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from watcher.config.base import ConfigModel
from watcher.config.sources import EmbeddedSource
from watcher.duration import PositiveDuration, format_duration

if TYPE_CHECKING:
    from watcher.config import Config

Problem = tuple[tuple[str | int, ...], str]
"""Where in watcher.yaml (a path of keys) and what is wrong there."""


class HaConfig(ConfigModel):
    replicas: int = Field(
        default=3, ge=1, le=100, description="replicas expected alive (fewer: a meta-alert)"
    )
    partitions: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="how many partitions the rules are hashed into (same on every replica)",
    )
    heartbeat: PositiveDuration = Field(
        default=timedelta(seconds=10), description="how often a replica renews its heartbeat and leases"
    )
    lease: PositiveDuration = Field(
        default=timedelta(seconds=30),
        description="how long a silent replica keeps its partitions before another takes them over",
    )

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> HaConfig:
        if self.lease < 2 * self.heartbeat:
            raise ValueError(
                f"lease {format_duration(self.lease)} must be at least two heartbeats "
                f"({format_duration(2 * self.heartbeat)}): one late heartbeat would lose every partition"
            )
        if self.partitions < self.replicas:
            raise ValueError(
                f"partitions ({self.partitions}) must be at least replicas ({self.replicas}): "
                "a replica without a partition evaluates nothing"
            )
        return self


def problems(config: Config) -> list[Problem]:
    """What makes ``config.ha`` unusable with the rest of the config, each at its place."""
    ha = config.ha
    if ha is None:
        return []
    if config.state.url is None:
        return [(("ha",), "ha needs a PostgreSQL state (state.url): a SQLite state file serves one replica")]
    if ha.replicas == 1:
        return []
    return [
        (
            ("sources", name, "store"),
            f"source {name!r} is embedded (a DuckDB file on one machine) and ha.replicas is "
            f"{ha.replicas}: replicas cannot share it; use an Elasticsearch/OpenSearch source, "
            "or ha.replicas: 1",
        )
        for name, source in config.sources.items()
        if isinstance(source, EmbeddedSource)
    ]

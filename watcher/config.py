"""Typed models of ``watcher.yaml``: sources, state, receivers, the route tree, HTTP.

Secrets are written as ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) and interpolated from the
environment at load time; they are held as ``SecretStr`` so they never show in reprs, logs or
``watcher check`` output.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from watcher.duration import Duration


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- sources


class EmbeddedSource(_Model):
    """A DuckDB file fed from JSON-lines log files."""

    store: Literal["embedded"]
    path: Path = Field(default=Path("data/logs.duckdb"), description="the DuckDB file")
    ingest: list[str] = Field(default_factory=list, description="globs of JSON-lines files to ingest")
    time_field: str = "@timestamp"
    retention: Duration = Field(default=timedelta(days=7), description="rows older than this are deleted")


class SearchSource(_Model):
    """An Elasticsearch (8/9) or OpenSearch cluster."""

    store: Literal["elasticsearch", "opensearch"]
    hosts: list[str] = Field(min_length=1)
    index: str = Field(description="index name or pattern, e.g. ml-api-*")
    time_field: str = "@timestamp"
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    ca_certs: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    verify_certs: bool = True
    timeout: Duration = timedelta(seconds=30)
    max_retries: int = Field(default=3, ge=0)
    msearch_max: int = Field(default=100, ge=1, description="queries per _msearch request")
    dashboards_url: str | None = Field(default=None, description="Kibana / OpenSearch Dashboards base URL")


Source = Annotated[EmbeddedSource | SearchSource, Field(discriminator="store")]


# --------------------------------------------------------------------------- receivers


class ConsoleReceiver(_Model):
    """Prints notifications to standard output (the demo, and a safe default)."""

    format: Literal["text", "json"] = "text"


class SlackReceiver(_Model):
    """Slack through slack-sdk: a bot token with ``chat.postMessage``, or an incoming webhook URL."""

    token: SecretStr | None = None
    channel: str | None = None
    webhook_url: SecretStr | None = None
    base_url: str | None = Field(default=None, description="Slack API base URL (tests, proxies)")

    @model_validator(mode="after")
    def _mode(self) -> SlackReceiver:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("slack needs 'token' and 'channel', or 'webhook_url'")
        return self


class Receiver(_Model):
    """A named destination; exactly one channel is configured."""

    console: ConsoleReceiver | None = None
    slack: SlackReceiver | None = None
    templates: dict[str, str] = Field(default_factory=dict, description="event -> template file override")

    @model_validator(mode="after")
    def _exactly_one(self) -> Receiver:
        kinds = self.channels()
        if len(kinds) != 1:
            names = ", ".join(RECEIVER_KINDS)
            raise ValueError(f"a receiver has exactly one of {names}; got {', '.join(kinds) or 'none'}")
        return self

    def channels(self) -> list[str]:
        return [name for name in RECEIVER_KINDS if getattr(self, name) is not None]

    @property
    def kind(self) -> str:
        return self.channels()[0]

    @property
    def settings(self) -> BaseModel:
        value = getattr(self, self.kind)
        assert isinstance(value, BaseModel)
        return value


RECEIVER_KINDS = ("console", "slack")


# --------------------------------------------------------------------------- routing


class Route(_Model):
    """A node of the route tree (Alertmanager's model). ``match`` is label -> exact value."""

    receiver: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)


class StateConfig(_Model):
    path: Path = Path("data/state.sqlite")


class HttpConfig(_Model):
    listen: str = "127.0.0.1:9464"
    enabled: bool = True


class Config(_Model):
    """The whole ``watcher.yaml``. Relative paths are resolved against the file's folder."""

    sources: dict[str, Source]
    state: StateConfig = StateConfig()
    receivers: dict[str, Receiver] = Field(default_factory=lambda: {"console": Receiver(console=ConsoleReceiver())})
    route: Route = Route(receiver="console")
    rules: list[Path] = Field(default_factory=lambda: [Path("rules")], description="rule files or folders")
    templates: Path = Path("templates")
    http: HttpConfig = HttpConfig()

    @model_validator(mode="after")
    def _receivers_exist(self) -> Config:
        for receiver in _route_receivers(self.route):
            if receiver not in self.receivers:
                known = ", ".join(sorted(self.receivers)) or "none"
                raise ValueError(f"route names unknown receiver {receiver!r} (defined: {known})")
        if self.route.receiver is None:
            raise ValueError("the root route needs a 'receiver'")
        return self


def _route_receivers(route: Route) -> list[str]:
    found = [route.receiver] if route.receiver else []
    for child in route.routes:
        found += _route_receivers(child)
    return found


# --------------------------------------------------------------------------- interpolation

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingEnvError(ValueError):
    """A ``${VAR}`` with no value in the environment and no default."""


def interpolate(value: Any, environ: dict[str, str] | None = None) -> Any:
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

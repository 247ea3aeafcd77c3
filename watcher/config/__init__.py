"""Typed models of ``watcher.yaml``: sources, state, receivers, the route tree, HTTP, delivery.

Secrets are written as ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) and interpolated from the
environment at load time; they are held as ``SecretStr`` so they never show in reprs, logs or
``watcher check`` output.

This package holds the root ``Config`` and the small sections only it uses (the route tree,
``inhibit``, ``meta``, ``state``, ``http``, ``reload``); the sections other stages read on their
own live beside it: ``sources``, ``receivers``, ``delivery``, ``ha``, and ``environment`` (the
interpolation). Import every name from ``watcher.config``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from watcher.config.base import ConfigModel
from watcher.config.delivery import BreakerConfig, DeliveryConfig, RetryConfig
from watcher.config.environment import MissingEnvError, interpolate, unresolved
from watcher.config.ha import HaConfig
from watcher.config.receivers import (
    E164,
    RECEIVER_KINDS,
    ConsoleReceiver,
    EmailAddress,
    EmailReceiver,
    Receiver,
    SlackReceiver,
    SmsReceiver,
    WebhookReceiver,
)
from watcher.config.sources import EmbeddedSource, Gap, SearchSource, Source
from watcher.config.state import StateConfig
from watcher.config.time_intervals import NamedTimeInterval, TimeInterval, TimeRange
from watcher.duration import Duration, PositiveDuration, format_duration
from watcher.incidents.flapping import DEFAULT_FLAPPING, FlappingSpec
from watcher.routing.matchers import Matchers
from watcher.rules.evidence import EvidenceDefaults

__all__ = [
    "E164",
    "RECEIVER_KINDS",
    "BreakerConfig",
    "Config",
    "ConsoleReceiver",
    "DeliveryConfig",
    "EmailAddress",
    "EmailReceiver",
    "EmbeddedSource",
    "Gap",
    "HaConfig",
    "HttpConfig",
    "InhibitRule",
    "MetaConfig",
    "MissingEnvError",
    "NamedTimeInterval",
    "Receiver",
    "ReloadConfig",
    "RetryConfig",
    "Route",
    "SearchSource",
    "SlackReceiver",
    "SmsReceiver",
    "Source",
    "StateConfig",
    "TimeInterval",
    "TimeRange",
    "WebhookReceiver",
    "interpolate",
    "listen_address",
]


# --------------------------------------------------------------------------- routing


class Route(ConfigModel):
    """A node of the route tree (Alertmanager's model). ``match`` is label -> exact value;
    ``matchers`` adds ``name!=value``, ``name=~regex`` and ``name!~regex`` (all must hold)."""

    receiver: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    matchers: Matchers = Field(default=(), description='e.g. ["severity=~critical|error", "team!=web"]')
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    mute_time_intervals: list[str] = Field(
        default_factory=list, description="names of time_intervals during which this route sends nothing"
    )
    active_time_intervals: list[str] = Field(
        default_factory=list, description="names of time_intervals outside which this route sends nothing"
    )
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _intervals(self) -> Route:
        for name in ("group_interval", "repeat_interval"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"'{name}' must be longer than 0s")
        return self


class InhibitRule(ConfigModel):
    """While an incident matching ``source`` fires, incidents matching ``target`` with the same
    values of the ``equal`` labels are not notified (Alertmanager's inhibit_rules)."""

    source: Matchers
    target: Matchers
    equal: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> InhibitRule:
        if not self.source or not self.target:
            raise ValueError("an inhibit rule needs at least one 'source' and one 'target' matcher")
        return self


class MetaConfig(ConfigModel):
    """watcher's own alerts (store unreachable, receiver dead, invalid rules)."""

    receiver: str | None = Field(
        default=None, description="send watcher's own alerts here instead of through the route tree"
    )
    store_failures: int = Field(default=3, ge=1, description="failed ticks in a row before a store alert")


_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+)):(?P<port>[0-9]{1,5})$")


def listen_address(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::1]:9464"`` / ``"0.0.0.0:9464"`` -> (host, port); port 0 lets
    the system pick a free one. ``ValueError`` for anything else, a port over 65535 included."""
    match = _LISTEN.match(listen.strip())
    if not match or int(match.group("port")) > 65535:
        raise ValueError(f"invalid http listen address {listen!r}: use host:port, e.g. 127.0.0.1:9464")
    return match.group("v6") or match.group("host"), int(match.group("port"))


class HttpConfig(ConfigModel):
    listen: str = Field(default="127.0.0.1:9464", description="host:port of /metrics, /healthz, /readyz")
    enabled: bool = True

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        if not unresolved(listen):
            listen_address(listen)
        return listen


class ReloadConfig(ConfigModel):
    """Hot reload of watcher.yaml and the rule files (SIGHUP reloads whatever this says)."""

    watch: bool = Field(default=True, description="reload when watcher.yaml or a rule file changes")
    interval: PositiveDuration = Field(
        default=timedelta(seconds=2), description="how often the files are checked for changes"
    )


class Config(ConfigModel):
    """The whole ``watcher.yaml``. Relative paths are resolved against the file's folder."""

    sources: dict[str, Source]
    state: StateConfig = StateConfig()
    receivers: dict[str, Receiver] = Field(
        default_factory=lambda: {"console": Receiver(console=ConsoleReceiver())}
    )
    route: Route = Route(receiver="console")
    rules: list[Path] = Field(default_factory=lambda: [Path("rules")], description="rule files or folders")
    templates: Path = Path("templates")
    http: HttpConfig = HttpConfig()
    inhibit: list[InhibitRule] = Field(default_factory=list)
    meta: MetaConfig = MetaConfig()
    reload: ReloadConfig = ReloadConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    ha: HaConfig | None = Field(
        default=None, description="several replicas on one PostgreSQL state (rule partitions, leases)"
    )
    flapping: FlappingSpec = Field(
        default=DEFAULT_FLAPPING, description="every rule's flapping unless it sets its own; false: off"
    )
    evidence: EvidenceDefaults = Field(
        default_factory=EvidenceDefaults, description="what the log documents shown in alerts redact"
    )
    time_intervals: list[NamedTimeInterval] = Field(
        default_factory=list,
        description="named times for routes' mute_time_intervals / active_time_intervals",
    )

    @property
    def gaps(self) -> dict[str, tuple[Gap, ...]]:
        """Each source's configured store gaps (``watcher.store.coverage``)."""
        return {name: source.gaps for name, source in self.sources.items()}

    @model_validator(mode="after")
    def _time_intervals_exist(self) -> Config:
        names = [named.name for named in self.time_intervals]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"time interval {name!r} is defined twice")
        if self.route.mute_time_intervals or self.route.active_time_intervals:
            raise ValueError("the root route cannot have 'mute_time_intervals' or 'active_time_intervals'")
        for name in _route_intervals(self.route):
            if name not in names:
                known = ", ".join(names) or "none"
                raise ValueError(f"route names unknown time interval {name!r} (defined: {known})")
        return self

    @model_validator(mode="after")
    def _meta_receiver_exists(self) -> Config:
        if self.meta.receiver is not None and self.meta.receiver not in self.receivers:
            known = ", ".join(sorted(self.receivers)) or "none"
            raise ValueError(f"meta names unknown receiver {self.meta.receiver!r} (defined: {known})")
        return self

    @model_validator(mode="after")
    def _receivers_exist(self) -> Config:
        for receiver in _route_receivers(self.route):
            if receiver not in self.receivers:
                known = ", ".join(sorted(self.receivers)) or "none"
                raise ValueError(f"route names unknown receiver {receiver!r} (defined: {known})")
        if self.route.receiver is None:
            raise ValueError("the root route needs a 'receiver'")
        return self

    @model_validator(mode="after")
    def _lease_outlasts_sends(self) -> Config:
        lease = self.delivery.retry.lease
        for name, receiver in self.receivers.items():
            timeout = getattr(receiver.settings, "timeout", None)
            if isinstance(timeout, timedelta) and timeout >= lease:
                raise ValueError(
                    f"receiver {name!r}: timeout {format_duration(timeout)} must be shorter than "
                    f"delivery.retry.lease ({format_duration(lease)}): a send still running when its "
                    "lease ends would be sent again"
                )
        return self


def _route_intervals(route: Route) -> list[str]:
    found = [*route.mute_time_intervals, *route.active_time_intervals]
    for child in route.routes:
        found += _route_intervals(child)
    return found


def _route_receivers(route: Route) -> list[str]:
    found = [route.receiver] if route.receiver else []
    for child in route.routes:
        found += _route_receivers(child)
    return found

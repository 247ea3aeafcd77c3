"""Typed models of ``watcher.yaml``: sources, state, receivers, the route tree, HTTP, delivery.

Secrets are written as ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) and interpolated from the
environment at load time; they are held as ``SecretStr`` so they never show in reprs, logs or
``watcher check`` output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher.duration import Duration, format_duration
from watcher.routing.matchers import Matchers


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
    threads: int = Field(default=1, ge=1, le=64, description="DuckDB worker threads (more: faster, more RSS)")
    memory_limit: str = Field(default="512MB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


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
    dashboards_data_view: str | None = Field(
        default=None,
        description="id of the data view (index pattern) Discover links open (default: Discover's)",
    )


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
    charts: bool = Field(default=True, description="upload a chart of the signal in the thread (files:write)")

    @model_validator(mode="after")
    def _mode(self) -> SlackReceiver:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("slack needs 'token' and 'channel', or 'webhook_url'")
        return self


_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _e164(number: str) -> str:
    if not _E164.fullmatch(number):
        raise ValueError(
            f"{number!r} is not an E.164 phone number: write + and the country code, then the number, "
            "digits only (at most 15), e.g. +14155550100"
        )
    return number


def _email_address(address: str) -> str:
    """``name@example.com`` or ``Name <name@example.com>``; never a line break (header injection)."""
    if any(char in address for char in "\r\n\x00") or not _ADDRESS.fullmatch(parseaddr(address)[1]):
        raise ValueError(f"{address!r} is not an email address (expected name@example.com)")
    return address


E164 = Annotated[str, AfterValidator(_e164)]
EmailAddress = Annotated[str, AfterValidator(_email_address)]


class EmailReceiver(_Model):
    """Email through SMTP: STARTTLS (default), implicit TLS or none, with optional authentication."""

    to: list[EmailAddress] = Field(min_length=1)
    from_: EmailAddress = Field(alias="from")
    host: str
    port: int | None = Field(
        default=None, ge=1, le=65535, description="default: 587, 465 with tls, 25 with none"
    )
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: Path | None = Field(
        default=None, description="CA bundle to verify the server (default: system)"
    )
    timeout: Duration = timedelta(seconds=10)
    charts: bool = Field(default=True, description="attach a chart of the signal, inline")

    @model_validator(mode="after")
    def _auth(self) -> EmailReceiver:
        if (self.username is None) != (self.password is None):
            raise ValueError("email needs both 'username' and 'password', or neither")
        if self.password is not None and self.security == "none":
            raise ValueError("email 'password' needs security 'starttls' or 'tls' (it would travel in clear)")
        return self


class SmsReceiver(_Model):
    """SMS through Twilio's REST API, one message per number in ``to``."""

    provider: Literal["twilio"] = "twilio"
    to: list[E164] = Field(min_length=1)
    from_: E164 | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = None
    account_sid: str = Field(min_length=1)
    auth_token: SecretStr
    max_segments: int = Field(default=2, ge=1, le=10, description="longer texts are cut to this many parts")
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _sender(self) -> SmsReceiver:
        if (self.from_ is None) == (self.messaging_service_sid is None):
            raise ValueError("sms needs exactly one of 'from' and 'messaging_service_sid'")
        return self


class WebhookReceiver(_Model):
    """A JSON POST of every notification (schema: docs/webhook.md), optionally HMAC-signed."""

    url: SecretStr = Field(description="may hold a token, so it is kept secret")
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key for X-Watcher-Signature")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="extra headers (Authorization)")
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _check(self) -> WebhookReceiver:
        # The messages name what is wrong, never the values: the URL and headers may hold secrets.
        if not self.url.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("webhook 'url' must start with https:// or http://")
        for name, value in self.headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"webhook header name {name!r} is not a valid HTTP header name")
            if any(char in value.get_secret_value() for char in "\r\n\x00"):
                raise ValueError(f"webhook header {name!r} has a line break in its value")
        return self


class Receiver(_Model):
    """A named destination; exactly one channel is configured."""

    console: ConsoleReceiver | None = None
    slack: SlackReceiver | None = None
    email: EmailReceiver | None = None
    sms: SmsReceiver | None = None
    webhook: WebhookReceiver | None = None
    templates: dict[str, str] = Field(
        default_factory=dict, description="event (or channel.event) -> template file override"
    )

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


RECEIVER_KINDS = ("console", "slack", "email", "sms", "webhook")


# --------------------------------------------------------------------------- routing


class Route(_Model):
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
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _intervals(self) -> Route:
        for name in ("group_interval", "repeat_interval"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"'{name}' must be longer than 0s")
        return self


class InhibitRule(_Model):
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


class MetaConfig(_Model):
    """watcher's own alerts (store unreachable, receiver dead, invalid rules)."""

    receiver: str | None = Field(
        default=None, description="send watcher's own alerts here instead of through the route tree"
    )
    store_failures: int = Field(default=3, ge=1, description="failed ticks in a row before a store alert")


class StateConfig(_Model):
    path: Path = Path("data/state.sqlite")


class HttpConfig(_Model):
    listen: str = "127.0.0.1:9464"
    enabled: bool = True


class ReloadConfig(_Model):
    """Hot reload of watcher.yaml and the rule files (SIGHUP reloads whatever this says)."""

    watch: bool = Field(default=True, description="reload when watcher.yaml or a rule file changes")
    interval: Duration = Field(
        default=timedelta(seconds=2), description="how often the files are checked for changes"
    )

    @model_validator(mode="after")
    def _positive(self) -> ReloadConfig:
        if self.interval <= timedelta(0):
            raise ValueError("'interval' must be longer than 0s")
        return self


class RetryConfig(_Model):
    """How hard the outbox tries one notification (``watcher.notify.outbox.RetryPolicy``, same
    names and defaults). The n-th failure waits ``min(max_backoff, base * factor**(n-1))``,
    shortened by up to ``jitter``; a service's Retry-After is a lower bound."""

    max_attempts: int = Field(default=10, ge=1, description="failed attempts before a dead letter")
    base: Duration = Field(default=timedelta(seconds=2), description="the wait after the first failure")
    factor: float = Field(default=2.0, ge=1, description="each further failure multiplies the wait by this")
    max_backoff: Duration = Field(default=timedelta(minutes=10), description="the longest wait")
    jitter: float = Field(default=0.2, ge=0, lt=1, description="waits are shortened by up to this fraction")
    max_age: Duration = Field(
        default=timedelta(hours=24),
        description="a notification still unsent this long after it was written becomes a dead letter",
    )
    lease: Duration = Field(
        default=timedelta(minutes=2),
        description="how long a send may take before the notification is tried again (keep it longer than "
        "the receivers' timeouts)",
    )

    @field_validator("base", "max_backoff", "max_age", "lease")
    @classmethod
    def _positive(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"'{info.field_name}' must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _base_within_max(self) -> RetryConfig:
        if self.base > self.max_backoff:
            raise ValueError(
                f"'base' ({format_duration(self.base)}) must not be longer than "
                f"'max_backoff' ({format_duration(self.max_backoff)})"
            )
        return self


class BreakerConfig(_Model):
    """When a receiver's circuit opens (``watcher.notify.breaker.CircuitBreaker``, same names and
    defaults): after ``threshold`` failures in a row, for ``cooldown``, doubled at each opening
    without a success in between up to ``max_cooldown``. A Retry-After opens it for exactly that long."""

    threshold: int = Field(default=3, ge=1, description="failures in a row that open the circuit")
    cooldown: Duration = Field(default=timedelta(seconds=5), description="how long it stays open at first")
    max_cooldown: Duration = Field(default=timedelta(minutes=5), description="the longest it stays open")

    @field_validator("cooldown", "max_cooldown")
    @classmethod
    def _positive(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"'{info.field_name}' must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _cooldown_within_max(self) -> BreakerConfig:
        if self.cooldown > self.max_cooldown:
            raise ValueError(
                f"'cooldown' ({format_duration(self.cooldown)}) must not be longer than "
                f"'max_cooldown' ({format_duration(self.max_cooldown)})"
            )
        return self


class DeliveryConfig(_Model):
    """Retries, circuit breaking and the shutdown flush, for every receiver. A reload applies them
    to the next attempts; open circuits stay open."""

    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    flush_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="how long a stop keeps delivering (0s: not at all); with the in-flight tick and one "
        "send's timeout it must fit in systemd's TimeoutStopSec (45s in deploy/) and Kubernetes' "
        "terminationGracePeriodSeconds",
    )


class Config(_Model):
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


def _route_receivers(route: Route) -> list[str]:
    found = [route.receiver] if route.receiver else []
    for child in route.routes:
        found += _route_receivers(child)
    return found


# --------------------------------------------------------------------------- interpolation

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

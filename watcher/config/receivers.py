"""The ``receivers:`` of ``watcher.yaml``: one model per channel and ``Receiver``, which names one.

Kept apart because each notifier (``watcher.notify``) needs only its own model, and because the
checks on addresses, phone numbers and headers belong beside the fields they guard: they run at
load time, so a bad receiver stops ``watcher check`` instead of failing at 3 a.m. Adding a channel
means one model here, one field of ``Receiver`` and one name in ``RECEIVER_KINDS``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretStr, model_validator

from watcher.config.base import ConfigModel
from watcher.config.environment import unresolved
from watcher.duration import Duration


def url_problem(url: str) -> str | None:
    """What keeps ``url`` from being an http(s) URL with a host, or None. Never quotes the URL:
    it may hold a token."""
    if unresolved(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises on a port that is not a number in 0-65535
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "must start with https:// or http://"
    if not host:
        return "has no host (expected e.g. https://hooks.example.com/...)"
    return None


class ConsoleReceiver(ConfigModel):
    """Prints notifications to standard output (the demo, and a safe default)."""

    format: Literal["text", "json"] = "text"


class PaceConfig(ConfigModel):
    """How fast a receiver's messages go (``watcher.notify.pacing``): ``per_second`` on average,
    ``burst`` at once after a quiet spell. Slack's limit is about one message a second per channel."""

    per_second: float = Field(default=1.0, gt=0, description="messages a second, on average")
    burst: int = Field(default=3, ge=1, description="messages at once after a quiet spell")


class SlackReceiver(ConfigModel):
    """Slack through slack-sdk: a bot token with ``chat.postMessage``, or an incoming webhook URL."""

    token: SecretStr | None = None
    channel: str | None = None
    webhook_url: SecretStr | None = None
    base_url: str | None = Field(default=None, description="Slack API base URL (tests, proxies)")
    charts: bool = Field(default=True, description="upload a chart of the signal in the thread (files:write)")
    timeout: Duration = Field(default=timedelta(seconds=10), description="how long one Slack call may take")
    pace: PaceConfig | None = Field(
        default_factory=lambda: PaceConfig(),
        description="messages per second to the channel (Slack allows about 1); null: as fast as possible",
    )
    app_token: SecretStr | None = Field(
        default=None,
        description="app-level token (xapp-…, scope connections:write): an Acknowledge button on firing "
        "messages, its clicks received through Socket Mode by the daemon",
    )

    @model_validator(mode="after")
    def _mode(self) -> SlackReceiver:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("slack needs 'token' and 'channel', or 'webhook_url'")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("slack 'token' is empty")
        if self.app_token is not None:
            app = self.app_token.get_secret_value()
            if self.token is None or not self.channel:
                raise ValueError("slack 'app_token' needs 'token' and 'channel' (a webhook has no buttons)")
            if not unresolved(app) and not app.startswith("xapp-"):
                raise ValueError("slack 'app_token' must be an app-level token (xapp-…), not a bot token")
        webhook = None if self.webhook_url is None else self.webhook_url.get_secret_value()
        for key, url in {"webhook_url": webhook, "base_url": self.base_url}.items():
            problem = None if url is None else url_problem(url)
            if problem:
                raise ValueError(f"slack '{key}' {problem}")
        return self


_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _e164(number: str) -> str:
    if unresolved(number):
        return number
    if not _E164.fullmatch(number):
        raise ValueError(
            f"{number!r} is not an E.164 phone number: write + and the country code, then the number, "
            "digits only (at most 15), e.g. +14155550100"
        )
    return number


def _email_address(address: str) -> str:
    """``name@example.com`` or ``Name <name@example.com>``; never a line break (header injection)."""
    if unresolved(address):
        return address
    if any(char in address for char in "\r\n\x00") or not _ADDRESS.fullmatch(parseaddr(address)[1]):
        raise ValueError(f"{address!r} is not an email address (expected name@example.com)")
    return address


E164 = Annotated[str, AfterValidator(_e164)]
EmailAddress = Annotated[str, AfterValidator(_email_address)]


class EmailReceiver(ConfigModel):
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


class SmsReceiver(ConfigModel):
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


class WebhookReceiver(ConfigModel):
    """A JSON POST of every notification (schema: docs/webhook.md), optionally HMAC-signed."""

    url: SecretStr = Field(description="may hold a token, so it is kept secret")
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key for X-Watcher-Signature")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="extra headers (Authorization)")
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _check(self) -> WebhookReceiver:
        # The messages name what is wrong, never the values: the URL and headers may hold secrets.
        problem = url_problem(self.url.get_secret_value())
        if problem:
            raise ValueError(f"webhook 'url' {problem}")
        for name, value in self.headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"webhook header name {name!r} is not a valid HTTP header name")
            if any(char in value.get_secret_value() for char in "\r\n\x00"):
                raise ValueError(f"webhook header {name!r} has a line break in its value")
        return self


class Receiver(ConfigModel):
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

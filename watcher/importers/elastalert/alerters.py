"""ElastAlert 2 alerters as watcher receivers, and one route per rule and receiver.

``alert:`` lists alerter names, or ``{name: {options}}`` whose options override the rule's. Each
alerter with a watcher channel has one converter in ``ALERTERS`` returning the receivers it
becomes; identical receivers are written once. ``alertmanager`` has no receiver (watcher routes
incidents itself, the way Alertmanager does): its labels and annotations go onto the rule.
``aggregation`` (ElastAlert 2 batches matches for that long) becomes the route's ``group_wait``
and ``group_interval``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watcher.duration import format_duration
from watcher.importers.elastalert.options import RuleOptions, field_list
from watcher.importers.elastalert.report import NotConvertibleError

ROOT = "console"
WATCHER_PAYLOAD = "watcher posts its own JSON (docs/webhook.md), not ElastAlert 2's match document"


@dataclass
class Alerter:
    """One entry of ``alert:``: its name, and its own options over the rule's."""

    name: str
    options: RuleOptions
    own: dict[str, Any]
    path: tuple[Any, ...]

    def get(self, key: str, default: Any = None) -> Any:
        return self.own[key] if key in self.own else self.options.get(key, default)

    def required(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise self.options.refuse(f"alert '{self.name}' needs '{key}'", *self.path)
        return value

    def approximated(self, text: str, key: str) -> None:
        self.options.approximated(text, *(self.path if key in self.own else (key,)))


def slack(alerter: Alerter) -> list[dict[str, Any]]:
    channel = alerter.get("slack_channel_override")
    if channel is not None:
        alerter.approximated(
            f"slack_channel_override {channel!r}: an incoming webhook posts to its own channel; "
            "for another channel give the receiver a bot token and 'channel'",
            "slack_channel_override",
        )
    return [{"slack": {"webhook_url": url}} for url in field_list(alerter.required("slack_webhook_url"))]


def email(alerter: Alerter) -> list[dict[str, Any]]:
    to = field_list(alerter.required("email"))
    copies = [*field_list(alerter.get("cc")), *field_list(alerter.get("bcc"))]
    if copies:
        alerter.approximated("cc and bcc become recipients in 'to'", "cc" if alerter.get("cc") else "bcc")
    settings: dict[str, Any] = {"to": [*to, *copies], "host": str(alerter.get("smtp_host", "localhost"))}
    sender = alerter.get("from_addr")
    if sender is None or "@" not in str(sender):
        alerter.approximated(
            f"from_addr {sender or 'ElastAlert'!r} is not an address; watcher needs one: "
            "elastalert@localhost is written, change it",
            "from_addr" if sender is not None else "email",
        )
        sender = "elastalert@localhost"
    settings["from"] = str(sender)
    if alerter.get("smtp_port") is not None:
        settings["port"] = int(alerter.get("smtp_port"))
    if alerter.get("smtp_ssl"):
        settings["security"] = "tls"
    else:
        alerter.approximated(
            "ElastAlert 2 uses STARTTLS when the server offers it; watcher requires it "
            "(write security: none to send in clear)",
            "email",
        )
    if alerter.get("smtp_auth_file") is not None:
        alerter.approximated(
            "smtp_auth_file is not read: the receiver takes ${SMTP_USERNAME} and ${SMTP_PASSWORD}",
            "smtp_auth_file",
        )
        settings.update(username="${SMTP_USERNAME}", password="${SMTP_PASSWORD}")
    return [{"email": settings}]


def post(alerter: Alerter) -> list[dict[str, Any]]:
    return _webhooks(alerter, "http_post")


def post2(alerter: Alerter) -> list[dict[str, Any]]:
    return _webhooks(alerter, "http_post2")


def _webhooks(alerter: Alerter, prefix: str) -> list[dict[str, Any]]:
    urls = field_list(alerter.required(f"{prefix}_url"))
    alerter.approximated(f"alert '{alerter.name}': {WATCHER_PAYLOAD}", f"{prefix}_url")
    headers = alerter.get(f"{prefix}_headers") or {}
    settings: dict[str, Any] = {"headers": {str(k): str(v) for k, v in headers.items()}} if headers else {}
    if alerter.get(f"{prefix}_timeout") is not None:
        settings["timeout"] = f"{int(alerter.get(f'{prefix}_timeout'))}s"
    return [{"webhook": {"url": url, **settings}} for url in urls]


def twilio(alerter: Alerter) -> list[dict[str, Any]]:
    settings: dict[str, Any] = {
        "to": [str(alerter.required("twilio_to_number"))],
        "account_sid": str(alerter.required("twilio_account_sid")),
        "auth_token": str(alerter.required("twilio_auth_token")),
    }
    service = alerter.get("twilio_message_service_sid")
    if service is not None:
        settings["messaging_service_sid"] = str(service)
    else:
        settings["from"] = str(alerter.required("twilio_from_number"))
    return [{"sms": settings}]


def debug(alerter: Alerter) -> list[dict[str, Any]]:
    return [{"console": {}}]


def alertmanager(alerter: Alerter) -> list[dict[str, Any]]:
    alerter.options.not_converted(
        "alert 'alertmanager': watcher has no Alertmanager receiver (it groups, routes and silences "
        "incidents itself); alertmanager_labels and alertmanager_annotations are kept on the rule",
        *alerter.path,
    )
    return []


ALERTERS: dict[str, Callable[[Alerter], list[dict[str, Any]]]] = {
    "slack": slack,
    "email": email,
    "post": post,
    "post2": post2,
    "twilio": twilio,
    "debug": debug,
    "alertmanager": alertmanager,
}


@dataclass
class AlerterBook:
    """The receivers and routes of every converted rule."""

    receivers: dict[str, dict[str, Any]] = field(default_factory=lambda: {ROOT: {"console": {}}})
    routes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, options: RuleOptions, rule: str) -> list[dict[str, Any]]:
        """The routes of ``rule`` (added to the book once the rule is written, by ``keep``)."""
        names: list[str] = []
        for alerter in alerters(options):
            convert = ALERTERS.get(alerter.name)
            if convert is None:
                options.not_converted(
                    f"alert '{alerter.name}' has no watcher receiver (slack, email, post, post2, twilio, "
                    "debug convert); the rule's incidents follow the root route",
                    *alerter.path,
                )
                continue
            names += [self._receiver(settings) for settings in convert(alerter)]
        timing = _aggregation(options, bool(names))
        # The root route's console needs no route of its own, unless the rule batches its alerts.
        wanted = [name for name in dict.fromkeys(names) if name != ROOT or timing]
        return [{"match": {"rule": rule}, "receiver": name, **timing, "continue": True} for name in wanted]

    def keep(self, routes: list[dict[str, Any]]) -> None:
        self.routes += routes

    def _receiver(self, settings: dict[str, Any]) -> str:
        for name, known in self.receivers.items():
            if known == settings:
                return name
        kind = next(iter(settings))
        name, number = kind, 2
        while name in self.receivers:
            name, number = f"{kind}-{number}", number + 1
        self.receivers[name] = settings
        return name


def alerters(options: RuleOptions) -> list[Alerter]:
    entries = options.get("alert") or []
    entries = entries if isinstance(entries, list) else [entries]
    found: list[Alerter] = []
    for index, entry in enumerate(entries):
        path = ("alert", index) if isinstance(options.get("alert"), list) else ("alert",)
        if isinstance(entry, str):
            found.append(Alerter(entry, options, {}, path))
        elif isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict):
            ((name, own),) = entry.items()
            found.append(Alerter(str(name), options, own, path))
        else:
            raise NotConvertibleError(
                options.where(*path), f"alert entry {entry!r} is not a name or {{name: {{options}}}}"
            )
    return found


def _aggregation(options: RuleOptions, routed: bool) -> dict[str, str]:
    if options.get("aggregation") is None:
        return {}
    value = options.get("aggregation")
    if isinstance(value, dict) and "schedule" in value:
        options.not_converted(
            f"aggregation schedule {value['schedule']!r}: watcher routes group by durations", "aggregation"
        )
        return {}
    span = options.duration("aggregation")
    if not routed or span is None:
        options.ignored("aggregation: the rule has no converted alerter to route", "aggregation")
        return {}
    shown = format_duration(span)
    options.approximated(
        f"aggregation {shown} becomes the route's group_wait and group_interval {shown}: ElastAlert 2 "
        "sends the matches of each period in one alert; watcher sends each group's changes at most "
        "that often",
        "aggregation",
    )
    return {"group_wait": shown, "group_interval": shown}


def rule_labels(options: RuleOptions) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations ``alertmanager_labels`` / ``alertmanager_annotations`` give the rule."""
    found: list[dict[str, str]] = []
    for key in ("alertmanager_labels", "alertmanager_annotations"):
        values = options.get(key) or {}
        kept: dict[str, str] = {}
        for name, value in values.items():
            if isinstance(value, dict):
                options.not_converted(
                    f"{key} {name!r} reads field {value.get('field')!r} of the matching document, which "
                    "watcher does not have (group_by fields are labels already)",
                    key,
                    name,
                )
                continue
            kept[str(name)] = (
                str(value).replace("{", "{{ '{' }}") if key.endswith("annotations") else str(value)
            )
        found.append(kept)
    return found[0], found[1]

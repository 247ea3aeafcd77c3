"""Notification templates: a sandboxed Jinja2 environment, filters for humans, per-channel escaping.

Templates are files ``<channel>/<event>.<ext>.j2`` (``slack/firing.md.j2``) looked up first in the
configured folder, then in watcher's default ``templates/`` folder, so a deployment overrides one
file by shipping a file of the same name. A rule (``templates: {slack.firing: x.j2}`` or
``{slack: x.j2}``) and a receiver (``templates: {firing: x.j2}``) can name other files; the order is
rule override, receiver override, default.

Escaping cannot be forgotten: every ``{{ expression }}`` a template prints goes through the channel's
escaper (the environment's ``finalize``), while the template's own literal text is kept as written.
So a log field holding ``<!channel>`` reaches Slack as ``&lt;!channel&gt;`` and can never ping.
Rendered annotations are ``Escaped`` (their data parts were escaped when they were rendered) and are
printed unchanged; a filter that changes such text returns a plain string that is escaped again,
which can double-escape but never under-escape.

Rendering is pure: the notification time is ``notification.created_at``. The context holds incident
data only, never receiver settings, so secrets cannot reach a template.
"""

from __future__ import annotations

import copy
import difflib
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    meta,
    nodes,
    pass_context,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from watcher.incidents.model import Event, Incident
from watcher.notify.base import Notification
from watcher.rules.models import Rule

log = logging.getLogger("watcher.templates")

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent / "templates"
NOT_AVAILABLE = "n/a"


class Escaped(str):
    """Text already safe for its channel: printed as is instead of escaped again."""

    __slots__ = ()


def escape_slack(text: str) -> str:
    """Slack mrkdwn control characters; ``<!channel>``, ``<@U1>`` and ``<url|x>`` become inert."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_console(text: str) -> str:
    """Terminal control characters (ANSI escapes, carriage returns) from logs are shown, not obeyed."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


@dataclass(frozen=True)
class Channel:
    """How one channel's templates are named and escaped."""

    name: str
    escape: Callable[[str], str]
    extension: str  # default template: <name>/<event>.<extension>.j2

    def default_template(self, event: Event) -> str:
        return f"{self.name}/{event.value}.{self.extension}.j2"


# One line per channel: a new channel adds its escaper here.
CHANNELS: dict[str, Channel] = {
    "console": Channel("console", escape_console, "txt"),
    "slack": Channel("slack", escape_slack, "md"),
}

# Names a notification template may use; annotations see ANNOTATION_KEYS (they are rendered per incident).
_INCIDENT_KEYS = ("rule", "rule_description", "signal", "severity", "state", "group", "labels", "details")
ANNOTATION_KEYS = frozenset((*_INCIDENT_KEYS, "value", "threshold", "incident", "now"))
NOTIFICATION_KEYS = ANNOTATION_KEYS | {
    "event",
    "receiver",
    "incidents",
    "annotations",
    "counts",
    "group_labels",
}


class RenderError(Exception):
    """A notification could not be rendered, not even with the default template."""


@dataclass(frozen=True)
class TemplateProblem:
    """One finding of ``Templates.check``: a syntax error, an unknown variable or a missing file."""

    template: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.template}:{self.line}" if self.line else self.template
        return f"{where}: {self.message}"


# --------------------------------------------------------------------------- filters


def percent(value: float | None, digits: int = 2) -> str:
    """0.0712 -> "7.12%"; trailing zeros dropped (0.05 -> "5%")."""
    if value is None or math.isnan(value):
        return NOT_AVAILABLE
    return f"{_trim(f'{value * 100:.{digits}f}')}%"


def number(value: float | None, digits: int | None = None) -> str:
    """Thousands separators, precision by size: 1234567 -> "1,234,567", 0.01234 -> "0.0123"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if digits is not None:
        return f"{value:,.{digits}f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return _trim(f"{value:.1f}")
    if size >= 1:
        return _trim(f"{value:.2f}")
    return f"{value:.3g}"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(value: float | timedelta | None) -> str:
    """Seconds or a timedelta as its two largest units: 3905 -> "1h 5m", 0.25 -> "250ms"."""
    if value is None:
        return NOT_AVAILABLE
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return f"-{duration(-seconds)}"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    counts, rest = [], int(seconds)
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        counts.append((count, unit))
    first = next(index for index, (count, _) in enumerate(counts) if count)
    return " ".join(f"{count}{unit}" for count, unit in counts[first : first + 2] if count)


@pass_context
def since(context: Context, value: datetime | str | None) -> str:
    """How long before the notification time: "12m ago" (or "in 5m" for a future time)."""
    if value is None:
        return NOT_AVAILABLE
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = context["now"] - moment
    if abs(delta) < timedelta(seconds=1):
        return "just now"
    return f"{duration(delta)} ago" if delta > timedelta(0) else f"in {duration(-delta)}"


@pass_context
def measure(context: Context, value: float | None, signal: str | None = None) -> str:
    """A rule's value in its own unit: a percentage for ratio signals, a number otherwise."""
    kind = signal if signal is not None else context.get("signal")
    return percent(value) if kind == "ratio" else number(value)


def labels(mapping: Mapping[str, Any]) -> str:
    """{"model_version": "v2", "region": "eu"} -> "model_version=v2, region=eu"."""
    return ", ".join(f"{key}={mapping[key]}" for key in sorted(mapping))


_EMOJI = {
    "critical": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
    "resolved": ":white_check_mark:",
}


def emoji(severity: str) -> str:
    """A Slack emoji code for a severity (or "resolved")."""
    return _EMOJI.get(str(severity), ":grey_question:")


FILTERS: dict[str, Callable[..., str]] = {
    "percent": percent,
    "number": number,
    "duration": duration,
    "since": since,
    "measure": measure,
    "labels": labels,
    "emoji": emoji,
}


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class _RuleInfo:
    signal: str | None
    description: str
    overrides: Mapping[str, str]


class Templates:
    """Loads, checks and renders notification templates; one instance per loaded configuration.

    ``for_receiver`` returns a view that shares the environments and adds one receiver's overrides.
    """

    def __init__(self, folder: Path | None = None, rules: Iterable[Rule] = ()) -> None:
        folders = [f for f in (folder, DEFAULT_FOLDER) if f is not None]
        unique = list(dict.fromkeys(f.resolve() for f in folders))
        self._loader = ChoiceLoader([FileSystemLoader(f) for f in unique])
        self._rules = {
            rule.name: _RuleInfo(rule.signal.kind, rule.description, dict(rule.templates)) for rule in rules
        }
        self._environments = {name: self._environment(channel.escape) for name, channel in CHANNELS.items()}
        self._receiver_overrides: Mapping[str, str] = {}
        self._compiled: dict[tuple[str, str], Template] = {}

    def _environment(self, escape: Callable[[str], str]) -> ImmutableSandboxedEnvironment:
        def finalize(value: Any) -> str:
            return value if isinstance(value, Escaped) else escape(str(value))

        env = ImmutableSandboxedEnvironment(
            loader=self._loader,
            undefined=StrictUndefined,
            finalize=finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        env.filters.update(FILTERS)
        return env

    def for_receiver(self, overrides: Mapping[str, str]) -> Templates:
        """This engine with one receiver's ``event -> template file`` overrides."""
        view = copy.copy(self)
        view._receiver_overrides = dict(overrides)
        return view

    # ------------------------------------------------------------------ context

    def context(self, notification: Notification, channel: str) -> dict[str, Any]:
        """Everything a notification template may use (see ``NOTIFICATION_KEYS``)."""
        now = notification.created_at
        views = [self._incident_view(incident, now, channel) for incident in notification.incidents]
        first = views[0] if views else _EMPTY_VIEW
        states = [incident.state.value for incident in notification.incidents]
        return {
            **self._incident_context(first, now),
            "event": notification.event.value,
            "receiver": notification.receiver,
            "incidents": views,
            "annotations": first["annotations"],
            "counts": {
                "firing": states.count("firing"),
                "resolved": states.count("resolved"),
                "total": len(states),
            },
            "group_labels": dict(notification.group_labels),
        }

    def _incident_view(self, incident: Incident, now: datetime, channel: str) -> dict[str, Any]:
        info = self._rules.get(incident.rule)
        began = incident.fired_at or incident.started_at
        view: dict[str, Any] = {
            "rule": incident.rule,
            "fingerprint": incident.fingerprint,
            "signal": info.signal if info else None,
            "rule_description": info.description if info else "",
            "severity": incident.severity,
            "state": incident.state.value,
            "group": dict(incident.group),
            "labels": dict(incident.labels),
            "value": incident.value,
            "threshold": incident.threshold,
            "started_at": incident.started_at,
            "fired_at": incident.fired_at,
            "resolved_at": incident.resolved_at,
            "active_for": (incident.resolved_at or now) - began,
            "note": incident.note,
            "details": dict(incident.details),
        }
        view["annotations"] = self.render_annotations(
            incident.annotations, channel, self._incident_context(view, now)
        )
        return view

    @staticmethod
    def _incident_context(view: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        context = {key: view.get(key) for key in ANNOTATION_KEYS - {"incident", "now"}}
        return {**context, "incident": view, "now": now}

    def render_annotations(
        self, annotations: Mapping[str, str], channel: str, context: Mapping[str, Any]
    ) -> dict[str, Escaped]:
        """Render a rule's raw annotation templates. A broken one shows its source and the error
        instead of blocking the notification (``watcher check`` reports it ahead of time)."""
        escape = self._channel(channel).escape
        rendered = {}
        for key, source in annotations.items():
            try:
                rendered[key] = Escaped(self._annotation(channel, source).render(context))
            except TemplateError as err:
                log.warning("annotation %r cannot be rendered: %s", key, err)
                rendered[key] = Escaped(f"{escape(source)} (template error: {escape(str(err))})")
        return rendered

    def _annotation(self, channel: str, source: str) -> Template:
        # Compiling is the slow part of rendering; rule files hold a bounded set of annotations.
        key = (channel, source)
        if key not in self._compiled:
            if len(self._compiled) >= 4096:
                self._compiled.clear()
            self._compiled[key] = self._env(channel).from_string(source)
        return self._compiled[key]

    # ------------------------------------------------------------------ rendering

    def template_names(self, channel: str, event: Event, rule: str | None = None) -> list[str]:
        """The templates tried for one message, in order: rule override, receiver override, default."""
        info = self._rules.get(rule or "")
        rule_overrides = info.overrides if info else {}
        candidates = [
            rule_overrides.get(f"{channel}.{event.value}"),
            rule_overrides.get(channel),
            self._receiver_overrides.get(event.value),
            self._channel(channel).default_template(event),
        ]
        return list(dict.fromkeys(name for name in candidates if name))

    def render(self, notification: Notification, channel: str) -> str:
        """The message text for one notification. An override that is missing or fails falls back to
        the next template (with a warning) so that a template mistake never swallows an alert."""
        context = self.context(notification, channel)
        rule = notification.incidents[0].rule if notification.incidents else None
        names = self.template_names(channel, notification.event, rule)
        for name in names[:-1]:
            try:
                return self.render_template(name, channel, context)
            except TemplateError as err:
                log.warning("template %s failed, falling back: %s", name, err)
        try:
            return self.render_template(names[-1], channel, context)
        except TemplateError as err:
            raise RenderError(f"template {names[-1]}: {err}") from err

    def render_template(self, name: str, channel: str, context: Mapping[str, Any]) -> str:
        """Render one named template strictly; raises ``jinja2.TemplateError``."""
        return self._env(channel).get_template(name).render(context)

    def _env(self, channel: str) -> ImmutableSandboxedEnvironment:
        return self._environments[self._channel(channel).name]

    @staticmethod
    def _channel(name: str) -> Channel:
        if name not in CHANNELS:
            raise ValueError(f"unknown template channel {name!r} (known: {', '.join(CHANNELS)})")
        return CHANNELS[name]

    # ------------------------------------------------------------------ check

    def check(self, template_names: Iterable[str] | None = None) -> list[TemplateProblem]:
        """Syntax errors, unknown filters, missing files and unknown variables of notification
        templates; all templates of the folders when ``template_names`` is None."""
        names = (
            self._env("console").list_templates(extensions=["j2"])
            if template_names is None
            else template_names
        )
        problems: list[TemplateProblem] = []
        for name in names:
            try:
                source, _, _ = self._loader.get_source(self._env("console"), name)
            except TemplateError:
                problems.append(TemplateProblem(name, None, "template file not found"))
                continue
            problems += self._check_source(name, source, NOTIFICATION_KEYS)
        return problems

    def check_rule(self, rule: Rule) -> list[TemplateProblem]:
        """A rule's annotations and template overrides."""
        problems: list[TemplateProblem] = []
        for key, source in rule.annotations.items():
            problems += self._check_source(f"rule {rule.name} annotation {key}", source, ANNOTATION_KEYS)
        return problems + self.check(rule.templates.values())

    def _check_source(self, name: str, source: str, known: frozenset[str]) -> list[TemplateProblem]:
        env = self._env("console")
        try:
            ast = env.parse(source, name)
            env.compile(ast, name)  # unknown filters and tests surface only when compiling
        except TemplateError as err:
            return [TemplateProblem(name, getattr(err, "lineno", None), str(getattr(err, "message", err)))]
        unknown = meta.find_undeclared_variables(ast) - known - set(env.globals)
        return [
            TemplateProblem(name, _first_line(ast, variable), _unknown(variable, known))
            for variable in sorted(unknown)
        ]


def _first_line(ast: nodes.Template, variable: str) -> int | None:
    lines = [node.lineno for node in ast.find_all(nodes.Name) if node.name == variable]
    return min(lines) if lines else None


def _unknown(variable: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(variable, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    return f"unknown variable {variable!r}{hint}"


_EMPTY_VIEW: dict[str, Any] = {"annotations": {}}

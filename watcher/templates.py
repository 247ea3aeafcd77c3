"""Notification templates: a sandboxed Jinja2 environment, filters for humans, per-channel escaping.

Templates are files ``<channel>/<event>.<ext>.j2`` (``slack/firing.md.j2``; the channels and their
escapers are in ``watcher.channels``, the filters in ``watcher.filters``) looked up first in the
configured folder, then in watcher's default ``templates/`` folder, so a deployment overrides one
file by shipping a file of the same name. A rule (``templates: {slack.firing: x.j2}`` or
``{slack: x.j2}``) and a receiver (``templates: {firing: x.j2}`` or ``{email_html.firing: x.j2}``)
can name other files; the order is rule override, receiver override, default.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
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
)
from jinja2.sandbox import ImmutableSandboxedEnvironment

from watcher.channels import CHANNELS, Channel
from watcher.config import EmbeddedSource, SearchSource
from watcher.filters import FILTERS
from watcher.incidents.model import Event, Incident
from watcher.notify.base import Notification
from watcher.notify.links import incident_links
from watcher.rules.models import Rule
from watcher.rules.thresholds import severity_rank

log = logging.getLogger("watcher.templates")


def _default_folder() -> Path:
    """watcher's own templates. The repository keeps them at its top (``templates/``), where the
    people who edit them look; the wheel ships them inside the package as ``watcher/_templates``
    (pyproject.toml), so an installed watcher needs no copy next to it. A checkout or an editable
    install has no ``_templates`` and reads the repository's folder."""
    package = Path(__file__).resolve().parent
    packaged = package / "_templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


DEFAULT_FOLDER = _default_folder()


class Escaped(str):
    """Text already safe for its channel: printed as is instead of escaped again."""

    __slots__ = ()


# Names a notification template may use; annotations see ANNOTATION_KEYS (they are rendered per incident).
_INCIDENT_KEYS = (
    "rule", "rule_description", "signal", "severity", "state", "group", "labels", "details", "links",
    "evidence", "ack",
)  # fmt: skip
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


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class _RuleInfo:
    rule: Rule
    source: EmbeddedSource | SearchSource | None  # for links to the logs

    @property
    def signal(self) -> str | None:
        return self.rule.signal.kind


class Templates:
    """Loads, checks and renders notification templates; one instance per loaded configuration.

    ``for_receiver`` returns a view that shares the environments and adds one receiver's overrides.
    ``sources`` (the config's) lets incidents link to their logs (``watcher.notify.links``).
    """

    def __init__(
        self,
        folder: Path | None = None,
        rules: Iterable[Rule] = (),
        sources: Mapping[str, EmbeddedSource | SearchSource] | None = None,
    ) -> None:
        folders = [f for f in (folder, DEFAULT_FOLDER) if f is not None]
        unique = list(dict.fromkeys(f.resolve() for f in folders))
        self._loader = ChoiceLoader([FileSystemLoader(f) for f in unique])
        known = sources or {}
        self._rules = {rule.name: _RuleInfo(rule, known.get(rule.source)) for rule in rules}
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
        """This engine with one receiver's ``event`` (or ``channel.event``) ``-> template file`` overrides."""
        view = copy.copy(self)
        view._receiver_overrides = dict(overrides)
        return view

    def signal(self, rule: str) -> str | None:
        """The signal kind of a known rule (``ratio``, ``count``, ...): how its values read."""
        info = self._rules.get(rule)
        return info.signal if info else None

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
            "rule_description": info.rule.description if info else "",
            "severity": incident.severity,
            "state": incident.state.value,
            "group": dict(incident.group),
            "labels": dict(incident.labels),
            "value": incident.value,
            "threshold": incident.threshold,
            "started_at": incident.started_at,
            "fired_at": incident.fired_at,
            "resolved_at": incident.resolved_at,
            "found_late": incident.found_late,
            "left_route": left_route(incident),
            "flapping": incident.flapping,
            "flap_ended": incident.flap_ended,
            "active_for": (incident.resolved_at or now) - began,
            "note": incident.note,
            "details": dict(incident.details),
            "evidence": [dict(document) for document in incident.evidence],
            "ack": _ack_view(incident.ack),
            "acknowledged_now": incident.acknowledged_now,
            "ack_undone": _undone_view(incident.ack_undone),
            "links": incident_links(info.rule, info.source, incident, now) if info else {},
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
        rule_overrides = info.rule.templates if info else {}
        kind, receiver = self._channel(channel), self._receiver_overrides
        candidates = [
            rule_overrides.get(f"{channel}.{event.value}"),
            rule_overrides.get(channel),
            receiver.get(f"{channel}.{event.value}"),
            receiver.get(event.value) if kind.main else None,
            kind.default_template(event),
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
            problems += self.check_annotation(f"rule {rule.name} annotation {key}", source)
        return problems + self.check(rule.templates.values())

    def check_annotation(self, name: str, source: str) -> list[TemplateProblem]:
        """One annotation template, against the names annotations may use (``ANNOTATION_KEYS``)."""
        return self._check_source(name, source, ANNOTATION_KEYS)

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


def _undone_view(undone: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ack taken back, as ``_ack_view`` shows an ack, and who took it back (``undone_by``)."""
    view = _ack_view(undone)
    return None if view is None or undone is None else {**view, "undone_by": undone.get("undone_by", "")}


def _ack_view(ack: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An incident's ack for templates: ``by``, ``message``, and ``at`` / ``until`` as times."""
    if ack is None:
        return None
    until = ack.get("until")
    return {
        "by": ack.get("by", ""),
        "message": ack.get("message", ""),
        "at": datetime.fromisoformat(ack["at"]),
        "until": None if until is None else datetime.fromisoformat(until),
    }


def left_route(incident: Incident) -> str:
    """Why a RESOLVED's incident left the receiver's route while still open (``Incident.left_route``):
    ``"de-escalated to warning"``, ``"escalated to critical"``, ``"now warning"`` (changed while
    flapping, untold), ``"rerouted by a configuration change"`` (the routes changed on a reload);
    empty when it did not."""
    if not incident.left_route:
        return ""
    if incident.rerouted:
        return "rerouted by a configuration change"
    if not incident.severity_from:
        return f"now {incident.severity}"
    lower = severity_rank(incident.severity) < severity_rank(incident.severity_from)
    return f"{'de-escalated' if lower else 'escalated'} to {incident.severity}"

"""Links a notification offers besides the runbook: the logs behind an incident in Discover.

When a search source has ``dashboards_url`` (Kibana, OpenSearch Dashboards), an incident links to
Discover with the rule's query and time range already set, so the first click of whoever is on
call shows the requests that fired it. The query is the rule's ``where`` and, for a ratio rule,
its ``of`` filter (the 5xx requests of a 5xx-rate rule), narrowed to the incident's group, in KQL
(which OpenSearch Dashboards calls DQL). The time range covers the windows that alerted: from the
start of the first one (``started_at - delay - window``) to the end of the latest one.

The URL is the classic Discover URL (``app/discover#/?_g=...&_a=...``, rison-encoded state) that
Kibana 7/8/9 opens and OpenSearch Dashboards migrates to its Data Explorer. Everything here is
computed from configuration and the incident: no store is asked anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from watcher.config import EmbeddedSource, SearchSource
from watcher.incidents.model import Incident
from watcher.query_filters import MATCH_ALL, And, Eq, Exists, Filter, In, Not, Range, Scalar
from watcher.rules.models import Rule

_KQL_SPECIAL = re.compile(r'([\\():<>"*{}\s])')
_RANGE_WORDS = (("gte", ">="), ("gt", ">"), ("lte", "<="), ("lt", "<"))


def incident_links(
    rule: Rule, source: EmbeddedSource | SearchSource | None, incident: Incident, now: datetime
) -> dict[str, str]:
    """The links of one incident by name (``dashboards`` when its source has a dashboards URL)."""
    if not isinstance(source, SearchSource) or not source.dashboards_url:
        return {}
    start = incident.started_at - rule.delay - rule.window
    end = (incident.resolved_at or now) - rule.delay
    return {"dashboards": discover_url(source, rule_query(rule, incident.group), start, end)}


def rule_query(rule: Rule, group: Mapping[str, str]) -> str:
    """The KQL of the documents behind a rule's signal for one group."""
    parts = [rule.where]
    if rule.signal.ratio is not None:
        parts.append(rule.signal.ratio.of)
    parts += [Eq(field, value) for field, value in sorted(group.items())]
    return " and ".join(_kql(part, nested=len(parts) > 1) for part in parts if part != MATCH_ALL)


def discover_url(source: SearchSource, query: str, start: datetime, end: datetime) -> str:
    """A Discover URL for ``query`` between ``start`` and ``end`` on the source's data view."""
    assert source.dashboards_url
    time = f"(from:{_rison(_iso(start))},to:{_rison(_iso(end))})"
    app = f"query:(language:kuery,query:{_rison(query)})"
    if source.dashboards_data_view:
        app = f"index:{_rison(source.dashboards_data_view)},{app}"
    base = source.dashboards_url.rstrip("/")
    return f"{base}/app/discover#/?_g=(time:{_quote(time)})&_a=({_quote(app)})"


# --------------------------------------------------------------------------- KQL


def _kql(node: Filter, nested: bool = False) -> str:
    """KQL for a filter; ``nested`` puts a compound in parentheses."""
    if isinstance(node, Eq):
        return f"{_field(node.field)}:{_value(node.value)}"
    if isinstance(node, In):
        values = " or ".join(_value(value) for value in node.values)
        return f"{_field(node.field)}:({values})"
    if isinstance(node, Exists):
        return f"{_field(node.field)}:*"
    if isinstance(node, Range):
        bounds = [(word, getattr(node, op)) for op, word in _RANGE_WORDS if getattr(node, op) is not None]
        text = " and ".join(f"{_field(node.field)} {word} {_number(bound)}" for word, bound in bounds)
        return f"({text})" if nested and len(bounds) > 1 else text
    if isinstance(node, Not):
        return f"not {_kql(node.filter, nested=True)}"
    joiner = " and " if isinstance(node, And) else " or "
    parts = [_kql(child, nested=True) for child in node.filters]
    if not parts:
        return "*" if isinstance(node, And) else "not *"
    text = joiner.join(parts)
    return f"({text})" if nested and len(parts) > 1 else text


def _field(name: str) -> str:
    return _KQL_SPECIAL.sub(r"\\\1", name)


def _value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    return json.dumps(value, ensure_ascii=False)  # a quoted KQL string: \ and " escaped


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------- rison and the URL


def _rison(text: str) -> str:
    """A rison string literal: quoted, with ``!`` and ``'`` escaped by ``!``."""
    return "'" + text.replace("!", "!!").replace("'", "!'") + "'"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _quote(rison: str) -> str:
    # Rison's own punctuation stays readable; everything else (spaces, quotes, <, >, &, #) is escaped.
    return quote(rison, safe="()',:!*-._~")

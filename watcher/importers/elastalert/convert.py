"""One ElastAlert 2 rule as one watcher rule: the options every rule type shares.

The rule type's converter (``rule_types``) gives the window, signal and detector; this module adds
the name, the source (the index), ``where`` (the filters), ``group_by`` (``query_key``), the
timing (``run_every`` -> ``every``, ``query_delay`` -> ``delay``, ``realert`` -> ``repeat_interval``),
the texts, labels and routes, and a note for every other option the rule sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from watcher.duration import format_duration
from watcher.importers.elastalert.alerters import AlerterBook, rule_labels
from watcher.importers.elastalert.document_types import DOCUMENT_TYPES
from watcher.importers.elastalert.filters import all_of, convert_filters
from watcher.importers.elastalert.options import RuleOptions, field_list
from watcher.importers.elastalert.rule_types import RULE_TYPES, Converted
from watcher.importers.elastalert.sources import SourceBook
from watcher.importers.elastalert.texts import annotation, labels

NOTED = {
    "use_count_query": "watcher always counts in the store",
    "use_terms_query": "watcher always groups in the store (terms aggregation or DuckDB)",
    "doc_type": "mapping types are gone since Elasticsearch 7; watcher does not use one",
    "terms_size": "watcher reads every group",
    "buffer_time": "ElastAlert 2 re-reads this much recent data at each run for late documents; watcher "
    "reads each bucket once, 'delay' after its end: set delay to your ingest lag",
}
SILENT = {
    "name", "type", "index", "description", "alert", "owner", "priority", "timestamp_field",
    "timestamp_type", "use_strftime_index", "es_host", "es_port", "es_hosts", "use_ssl",
    "es_username", "es_password", "verify_certs", "is_enabled", "query_key", "filter",
}  # fmt: skip
ALERT_PREFIXES = ("slack_", "http_post", "twilio_", "smtp_", "alertmanager_", "email")
ALERT_OPTIONS = {"from_addr", "cc", "bcc", "email_reply_to", "alert_subject", "alert_subject_args",
                 "alert_text", "alert_text_args", "alert_text_type", "aggregation"}  # fmt: skip


CONVERTERS = {**RULE_TYPES, **DOCUMENT_TYPES}
"""Every ElastAlert 2 rule type watcher converts: aggregate types, then document-level ones."""


@dataclass
class ConvertedRule:
    rule: dict[str, Any]
    routes: list[dict[str, Any]]


def convert_rule(options: RuleOptions, sources: SourceBook, book: AlerterBook) -> ConvertedRule:
    """The watcher rule of an ElastAlert 2 rule; raises ``NotConvertibleError``."""
    if options.has("import"):
        raise options.refuse("'import' merges another rule file; convert the merged rule", "import")
    typed = CONVERTERS[_rule_type(options)](options)
    name = rule_name(options)
    rule: dict[str, Any] = {
        "name": name,
        "description": str(
            options.get("description") or f"Imported from ElastAlert 2 rule {options.get('name')!r}"
        ),
        "source": "",
        **_timing(options, typed.pop("window")),
    }
    where = all_of(
        [part for part in (convert_filters(options, "filter"), typed.pop("extra_where", None)) if part]
    )
    if where is not None:
        rule["where"] = where
    group_by = field_list(options.get("query_key"))
    if group_by:
        rule["group_by"] = group_by
    included = field_list(options.get("include"))
    if included and "*" not in included:  # the fields an alert shows of its matches: its evidence
        rule["evidence"] = {"fields": included}
    summary = typed.pop("summary")
    rule.update(typed)
    if rule.get("group_by", ()) is None:  # the type's query_key is no grouping (new_term)
        del rule["group_by"]
    rule.update(_repeat(options))
    extra_labels, extra_annotations = rule_labels(options)
    rule_labels_ = {**labels(options), **extra_labels}
    if rule_labels_:
        rule["labels"] = rule_labels_
    rule["annotations"] = _annotations(options, summary, extra_annotations)
    rule["source"] = sources.source_for(options)
    routes = book.add(options, name)
    _note_the_rest(options)
    return ConvertedRule(rule, routes)


def _rule_type(options: RuleOptions) -> str:
    kind = options.get("type")
    if not isinstance(kind, str):
        raise options.refuse("the rule has no 'type'", "type")
    if "." in kind:
        raise options.refuse(
            f"type '{kind}' is a custom rule type (Python code ElastAlert 2 imports); watcher cannot run it",
            "type",
        )
    if kind not in CONVERTERS:
        raise options.refuse(f"unknown rule type '{kind}'", "type")
    return kind


def rule_name(options: RuleOptions) -> str:
    name = options.get("name")
    if not isinstance(name, str) or not name.strip():
        raise options.refuse("the rule has no 'name'", "name")
    slug = re.sub(r"[^a-z0-9_.:-]+", "-", name.strip().lower()).strip("-_.:")
    return slug or "rule"


def _timing(options: RuleOptions, window: str) -> dict[str, Any]:
    every = options.duration("run_every")
    timing: dict[str, Any] = {"every": format_duration(every) if every else "1m", "window": window}
    delay = options.duration("query_delay")
    if delay is not None:
        timing["delay"] = format_duration(delay)
    return timing


def _repeat(options: RuleOptions) -> dict[str, str]:
    realert = options.duration("realert")
    if options.has("exponential_realert"):
        options.approximated(
            f"exponential_realert {options.shown('exponential_realert')}: watcher re-notifies at a fixed "
            "repeat_interval, it does not double it",
            "exponential_realert",
        )
    if realert is None:
        return {}
    if realert.total_seconds() <= 0:
        options.approximated(
            "realert 0 (alert on every match): watcher tells an incident once and re-notifies it at "
            "the route's repeat_interval",
            "realert",
        )
        return {}
    shown = format_duration(realert)
    options.approximated(
        f"realert {options.shown('realert')} becomes repeat_interval {shown}: ElastAlert 2 drops a "
        f"key's matches for {shown} after an alert; watcher keeps one incident open while the "
        f"condition holds and re-notifies it every {shown}",
        "realert",
    )
    return {"repeat_interval": shown}


def _annotations(options: RuleOptions, summary: str, extra: dict[str, str]) -> dict[str, str]:
    texts = {
        "summary": annotation(options, "alert_subject", "alert_subject_args") or summary,
        "description": annotation(options, "alert_text", "alert_text_args"),
    }
    return {**{key: text for key, text in texts.items() if text}, **extra}


def _note_the_rest(options: RuleOptions) -> None:
    """A note for each option the rule file sets that played no part in the conversion."""
    for key in options.rule.data:
        if key in options.read or key in SILENT:
            continue
        if key in NOTED:
            options.ignored(f"{key}: {NOTED[key]}", key)
        elif not (str(key).startswith(ALERT_PREFIXES) or key in ALERT_OPTIONS):
            options.ignored(f"{key!r} has no watcher equivalent", key)


__all__ = ["Converted", "ConvertedRule", "convert_rule", "rule_name"]

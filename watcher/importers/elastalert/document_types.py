"""The document-level ElastAlert 2 rule types, converted to watcher's document-level detectors:
``any`` -> ``match``, ``blacklist`` / ``whitelist`` -> ``values`` (``deny`` / ``allow``),
``new_term`` -> ``new_value``, ``change`` -> ``change``.

ElastAlert 2 reads each document once, in the run after it arrives (``run_every``, less
``query_delay``); watcher's window is ``every`` long, so each document is in one window too. Where
ElastAlert 2 sends one alert per matching document (``realert`` aside), watcher opens one incident
per group with the count, and re-notifies it on its ``repeat_interval``. The rules are written with
``flapping: false``: a new value every few minutes is a new alert, as in ElastAlert 2.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from watcher.duration import format_duration
from watcher.importers.elastalert.options import RuleOptions, field_list
from watcher.importers.elastalert.rule_types import Converted

FILE_ENTRY = "!file "
NEW_TERM_LOOKBACK = timedelta(days=30)


def _window(options: RuleOptions) -> str:
    every = options.duration("run_every")
    return format_duration(every) if every else "1m"


def _compare_key(options: RuleOptions) -> str:
    key = options.get("compare_key")
    if isinstance(key, list) and len(key) == 1:
        key = key[0]
    if isinstance(key, list):
        raise options.refuse(
            f"compare_key {key} has several fields; watcher's '{options.get('type')}' watches one",
            "compare_key",
        )
    if not isinstance(key, str) or not key:
        raise options.refuse(f"type '{options.get('type')}' needs 'compare_key'", "type")
    return key


def any_match(options: RuleOptions) -> Converted:
    return {"window": _window(options), "match": {}, "summary": "{{ value | number }} matching documents"}


def blacklist(options: RuleOptions) -> Converted:
    field = _compare_key(options)
    converted = {
        "window": _window(options),
        "values": {"field": field, "deny": _listed(options, "blacklist")},
    }
    return {**converted, "summary": f"{{{{ value | number }}}} documents with a denied {field}"}


def whitelist(options: RuleOptions) -> Converted:
    field = _compare_key(options)
    values: dict[str, Any] = {"field": field, "allow": _listed(options, "whitelist")}
    if options.get("ignore_null") is False:
        values["missing"] = "alert"
    summary = f"{{{{ value | number }}}} documents with a {field} not allowed"
    return {"window": _window(options), "values": values, "summary": summary}


def _listed(options: RuleOptions, key: str) -> Any:
    """The list inline, or ``{file: path}`` for ElastAlert 2's one ``!file path`` entry (a relative
    path is taken from the ElastAlert 2 rule file's folder and written absolute)."""
    entries = options.get(key)
    if not isinstance(entries, list) or not entries:
        raise options.refuse(f"type '{options.get('type')}' needs a non-empty '{key}' list", "type")
    files = [entry for entry in entries if isinstance(entry, str) and entry.startswith(FILE_ENTRY)]
    if not files:
        return entries
    if len(entries) > 1:
        raise options.refuse(
            f"'{key}' mixes values and !file entries; watcher reads one list: put them in one file", key
        )
    path = Path(files[0][len(FILE_ENTRY) :].strip())
    if not path.is_absolute():
        path = (options.rule.path.parent / path).resolve()
        options.approximated(
            f"{files[0]}: ElastAlert 2 opens it from its working folder; watcher reads {path}", key
        )
    return {"file": str(path)}


def new_term(options: RuleOptions) -> Converted:
    fields = _term_fields(options)
    lookback = options.duration("terms_window_size") or NEW_TERM_LOOKBACK
    if options.get("window_step_size") is not None:
        options.ignored(
            "window_step_size: watcher asks the store for the whole lookback at once", "window_step_size"
        )
    if options.get("alert_on_missing_field"):
        options.not_converted(
            "alert_on_missing_field: watcher's new_value ignores documents without the field",
            "alert_on_missing_field",
        )
    if options.get("threshold") is not None:
        options.approximated(
            "threshold: ElastAlert 2 waits for a new term to occur this often; watcher fires on its first "
            "document",
            "threshold",
        )
    shown = ", ".join(fields)
    return {
        "window": _window(options),
        "group_by": None,
        "new_value": {"fields": fields, "lookback": format_duration(lookback)},
        "summary": f"{{{{ value | number }}}} new {shown} (unseen in {format_duration(lookback)})",
    }


def _term_fields(options: RuleOptions) -> list[str]:
    """``fields`` (or, without it, ``query_key``) as one combination of fields. ElastAlert 2 finds the
    terms of each field, or of each ``[a, b]`` entry, across the index: ``query_key`` is no grouping."""
    written = options.get("fields")
    if written is None:
        fields = field_list(options.get("query_key"))
        if not fields:
            raise options.refuse("type 'new_term' needs 'fields' (or 'query_key')", "type")
        return fields
    entries = written if isinstance(written, list) else [written]
    if options.get("query_key") is not None:
        options.ignored(
            "query_key: a new term is new across the index, as ElastAlert 2 finds it", "query_key"
        )
    if len(entries) == 1:
        return field_list(entries[0])
    if any(isinstance(entry, list) for entry in entries):
        raise options.refuse(
            "'fields' lists several combinations; watcher's new_value watches one: import one rule per entry",
            "fields",
        )
    options.approximated(
        f"fields {entries}: ElastAlert 2 looks for new values of each field on its own; watcher looks for "
        "new combinations of them (a new value of any field is one, and so is a new pairing of known values)",
        "fields",
    )
    return [str(entry) for entry in entries]


def change(options: RuleOptions) -> Converted:
    field = _compare_key(options)
    key = field_list(options.get("query_key"))
    if not key:
        raise options.refuse("type 'change' needs 'query_key' (the key whose value changes)", "type")
    spec: dict[str, Any] = {"field": field, "by": key}
    timeframe = options.duration("timeframe")
    if timeframe is not None:
        spec["lookback"] = format_duration(timeframe)
    else:
        options.approximated(
            "no timeframe: ElastAlert 2 remembers a key's value from when it started; watcher looks back 1d "
            "(change.lookback)",
            "compare_key",
        )
    if options.get("ignore_null") is False:
        options.approximated(
            "ignore_null false: ElastAlert 2 counts a missing value as a value; watcher's change ignores "
            "documents without the field",
            "ignore_null",
        )
    return {
        "window": _window(options),
        "change": spec,
        "summary": f"{field} changed",
    }


def _every_match(convert: Callable[[RuleOptions], Converted]) -> Callable[[RuleOptions], Converted]:
    """ElastAlert 2 alerts on every match: no flapping hold, which would keep an incident firing
    through a quiet spell and fold the next match into it unannounced."""
    return lambda options: {**convert(options), "flapping": False}


DOCUMENT_TYPES: dict[str, Callable[[RuleOptions], Converted]] = {
    kind: _every_match(convert)
    for kind, convert in (
        ("any", any_match),
        ("blacklist", blacklist),
        ("whitelist", whitelist),
        ("new_term", new_term),
        ("change", change),
    )
}

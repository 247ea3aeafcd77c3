"""ElastAlert 2 indexes as watcher sources.

A watcher rule names a source of ``watcher.yaml``; an ElastAlert 2 rule names an index pattern
and a cluster. Each distinct (index pattern, cluster, time field) becomes one source of the
fragment, named after the index (``logs-app-*`` -> ``logs-app``), and every rule on it names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from watcher.importers.elastalert.options import RuleOptions

STRFTIME = re.compile(r"%[a-zA-Z]")
DEFAULT_HOST = "${ES_URL:-http://localhost:9200}"
TIME_FORMATS = {"iso": "iso8601", "unix": "epoch_s", "unix_ms": "epoch_ms"}


@dataclass
class SourceBook:
    """The sources the converted rules name, in the order they were first needed."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def source_for(self, options: RuleOptions) -> str:
        index = _index(options)
        settings: dict[str, Any] = {
            "store": "elasticsearch",
            "hosts": _hosts(options),
            "index": index,
            "time_field": str(options.get("timestamp_field", "@timestamp")),
        }
        time_format = TIME_FORMATS.get(str(options.get("timestamp_type", "iso")))
        if time_format is None:
            raise options.refuse(
                f"timestamp_type {options.get('timestamp_type')!r}: watcher reads ISO 8601, epoch_s "
                "or epoch_ms times",
                "timestamp_type",
            )
        if time_format != "iso8601":
            settings["time_format"] = time_format
        user = options.get("es_username")
        if user is not None:
            settings.update(username=str(user), password="${ES_PASSWORD}")
        options.get("es_password")  # read: its value is never copied, ${ES_PASSWORD} holds it
        for name, known in self.sources.items():
            if known == settings:
                return name
        name = _unique(_name_of(index), self.sources)
        self.sources[name] = settings
        return name


def _index(options: RuleOptions) -> str:
    index = options.get("index")
    if not isinstance(index, str) or not index:
        raise options.refuse("the rule has no 'index'", "index")
    if options.get("use_strftime_index") and STRFTIME.search(index):
        pattern = re.sub(r"\*+", "*", STRFTIME.sub("*", index))
        options.approximated(
            f"use_strftime_index: {index!r} becomes the pattern {pattern!r}: ElastAlert 2 searches "
            "only the indexes of the queried days; watcher searches the pattern, limited by time",
            "index",
        )
        return pattern
    return index


def _hosts(options: RuleOptions) -> list[str]:
    scheme = "https" if options.get("use_ssl") else "http"
    listed = options.get("es_hosts")
    if isinstance(listed, list) and listed:
        return [item if "://" in str(item) else f"{scheme}://{item}" for item in map(str, listed)]
    host, port = options.get("es_host"), options.get("es_port")
    if host is None:
        return [DEFAULT_HOST]
    return [f"{scheme}://{host}" + (f":{port}" if port is not None else "")]


def _name_of(index: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", index.replace("*", "")).strip("-._")
    return name or "elasticsearch"


def _unique(name: str, taken: dict[str, Any]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate

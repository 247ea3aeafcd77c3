"""ElastAlert 2 alert texts (``alert_text`` + ``alert_text_args``, ``alert_subject`` + its args) as
watcher annotation templates (Jinja).

ElastAlert 2 fills ``{0}``, ``{1}`` ... from fields of the matching document. watcher alerts on
aggregates: a ``query_key`` field is the group's label (``group["host"]``), a count or metric is
the incident's ``value``; any other document field has no value in watcher (evidence documents
are planned) and is shown as ``[field]``, with a note.
"""

from __future__ import annotations

import re
from typing import Any

from watcher.importers.elastalert.options import RuleOptions, field_list

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([0-9]*)(?:![rsa])?(?::[^{}]*)?\}|[{}]")
VALUE_ARGS = ("num_matches", "num_hits", "count", "spike_count", "metric_agg_value", "percentage")


def annotation(options: RuleOptions, text_key: str, args_key: str) -> str | None:
    """The template of ``text_key``, or None when the rule has none (or a form not converted)."""
    text = options.get(text_key)
    if text is None:
        return None
    if not isinstance(text, str):
        raise options.refuse(f"'{text_key}' must be text", text_key)
    if text_key == "alert_text" and options.get("alert_text_type") == "alert_text_jinja":
        options.approximated(
            "alert_text_type alert_text_jinja: the template reads the matching document, which "
            "watcher does not have; the text is not carried over",
            "alert_text_type",
        )
        return None
    args = field_list(options.get(args_key))
    group = field_list(options.get("query_key"))
    counter = iter(range(len(args) + 1000))
    out: list[str] = []
    position = 0
    for found in PLACEHOLDER.finditer(text):
        out.append(text[position : found.start()])
        position = found.end()
        token = found.group(0)
        if token in ("{{", "{", "}}", "}"):
            out.append("{{ '" + token[0] + "' }}")
            continue
        index = int(found.group(1)) if found.group(1) else next(counter)
        out.append(_argument(options, args_key, args, index, group))
    out.append(text[position:])
    return "".join(out)


def _argument(options: RuleOptions, args_key: str, args: list[str], index: int, group: list[str]) -> str:
    if index >= len(args):
        raise options.refuse(f"placeholder {{{index}}} has no argument in '{args_key}'", args_key)
    name = args[index]
    if name in group:
        return "{{ group[" + repr(name) + "] }}"
    if name in VALUE_ARGS or name.startswith("metric_"):
        return "{{ value | number }}"
    options.approximated(
        f"{args_key} {name!r} is a field of the matching document; watcher alerts on aggregates and "
        f"has no document to read it from, so the text shows [{name}]",
        args_key,
    )
    return f"[{name}]"


def labels(options: RuleOptions) -> dict[str, Any]:
    """``owner`` and ``priority`` as labels."""
    return {key: str(options.get(key)) for key in ("owner", "priority") if options.get(key) is not None}

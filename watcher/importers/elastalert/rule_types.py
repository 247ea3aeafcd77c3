"""One converter per ElastAlert 2 rule type, and ``RULE_TYPES``, the registry.

A converter reads its type's options and returns the watcher rule's window, signal and detector
(and a summary annotation). The comparisons follow ElastAlert 2's code: ``frequency`` matches when
a window holds at least ``num_events`` (watcher: above ``num_events - 1``), ``flatline`` when it
holds fewer than ``threshold``; ``cardinality``, ``metric_aggregation`` and ``percentage_match``
alert strictly above their maximum and below their minimum, as watcher's ``threshold`` does; a
spike reaches ``spike_height`` times its reference, as watcher's ``factor``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from watcher.duration import format_duration
from watcher.importers.elastalert.filters import convert_filters
from watcher.importers.elastalert.options import RuleOptions

Converted = dict[str, Any]
METRIC_STATS = ("min", "max", "avg", "sum")


def required_duration(options: RuleOptions, key: str) -> timedelta:
    value = options.duration(key)
    if value is None:
        raise options.refuse(f"type '{options.get('type')}' needs '{key}'", "type")
    if value <= timedelta(0):
        raise options.refuse(f"'{key}' must be longer than 0s", key)
    return value


def number(options: RuleOptions, key: str) -> float | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise options.refuse(f"'{key}' must be a number, got {value!r}", key)
    return value


def required_number(options: RuleOptions, key: str) -> float:
    value = number(options, key)
    if value is None:
        raise options.refuse(f"type '{options.get('type')}' needs '{key}'", "type")
    return value


def bounds(options: RuleOptions, above: str, below: str, scale: float = 1.0) -> dict[str, float]:
    found = {side: number(options, key) for side, key in (("above", above), ("below", below))}
    out = {side: value / scale for side, value in found.items() if value is not None}
    if not out:
        raise options.refuse(f"type '{options.get('type')}' needs '{above}' or '{below}'", "type")
    return out


def frequency(options: RuleOptions) -> Converted:
    window = required_duration(options, "timeframe")
    events = int(required_number(options, "num_events"))
    span = format_duration(window)
    return {
        "window": span,
        "signal": "count",
        "threshold": {"above": events - 1},
        "summary": f"{{{{ value | number }}}} events in {span} (at least {events})",
    }


def flatline(options: RuleOptions) -> Converted:
    window = required_duration(options, "timeframe")
    floor = required_number(options, "threshold")
    if options.get("forget_keys"):
        options.approximated(
            "forget_keys: ElastAlert 2 alerts once for a silent query_key and forgets it; watcher "
            "keeps one incident open for the silent group until it sends again",
            "forget_keys",
        )
    if options.get("query_key") is not None:
        options.approximated(
            "query_key on a flatline: ElastAlert 2 remembers every key it has seen since it started; "
            "watcher judges the groups seen within groups_from (1h, or twice the window)",
            "query_key",
        )
    span = format_duration(window)
    return {
        "window": span,
        "signal": "count",
        "flatline": {"below": floor},
        "summary": f"{{{{ value | number }}}} events in {span} (fewer than {floor:g})",
    }


def spike(options: RuleOptions) -> Converted:
    field = options.get("field_value")
    signal: Any = "count" if field is None else {"stat": {"field": str(field), "fn": "sum"}}
    return _spike(options, signal, "events" if field is None else f"sum of {field}")


def spike_aggregation(options: RuleOptions) -> Converted:
    signal, where = metric_signal(options)
    if options.get("metric_agg_type") in ("min", "max", "avg"):
        options.approximated(
            "metric_agg_type: ElastAlert 2 compares the per-run values it collected in each window; "
            "watcher computes the aggregation over each whole window",
            "metric_agg_type",
        )
    converted = _spike(
        options, signal, f"{options.get('metric_agg_type')} of {options.get('metric_agg_key')}"
    )
    return {**converted, "extra_where": where} if where else converted


def _spike(options: RuleOptions, signal: Any, what: str) -> Converted:
    window = required_duration(options, "timeframe")
    height = required_number(options, "spike_height")
    if height <= 1:
        raise options.refuse(f"spike_height {height:g} must be above 1 (watcher's factor)", "spike_height")
    direction = options.get("spike_type", "both")
    if direction not in ("up", "down", "both"):
        raise options.refuse(f"spike_type must be up, down or both, got {direction!r}", "spike_type")
    volumes = {key: number(options, key) or 0 for key in ("threshold_ref", "threshold_cur")}
    if volumes["threshold_ref"] != volumes["threshold_cur"]:
        key = "threshold_ref" if options.has("threshold_ref") else "threshold_cur"
        options.approximated(
            f"threshold_ref {volumes['threshold_ref']:g} and threshold_cur {volumes['threshold_cur']:g} "
            f"become min_volume {max(volumes.values()):g}: watcher needs one number of documents in "
            "both windows",
            key,
        )
    if options.get("alert_on_new_data"):
        options.ignored(
            "alert_on_new_data: watcher needs min_volume documents in the reference window",
            "alert_on_new_data",
        )
    span = format_duration(window)
    return {
        "window": span,
        "signal": signal,
        "spike": {
            "offset": span,
            "factor": height,
            "direction": direction,
            "min_volume": int(max(volumes.values())),
        },
        "summary": f"{what}: {{{{ value | number }}}} in {span}, {height:g}x the {span} before",
    }


def cardinality(options: RuleOptions) -> Converted:
    window = required_duration(options, "timeframe")
    field = options.get("cardinality_field")
    if not isinstance(field, str):
        raise options.refuse("type 'cardinality' needs 'cardinality_field'", "type")
    span = format_duration(window)
    return {
        "window": span,
        "signal": {"cardinality": {"field": field}},
        "threshold": bounds(options, "max_cardinality", "min_cardinality"),
        "summary": f"{{{{ value | number }}}} distinct {field} in {span}",
    }


def metric_aggregation(options: RuleOptions) -> Converted:
    signal, where = metric_signal(options)
    window = aggregation_window(options)
    doc_count = number(options, "min_doc_count")
    what = f"{options.get('metric_agg_type')} of {options.get('metric_agg_key')}"
    converted: Converted = {
        "window": format_duration(window),
        "signal": signal,
        "threshold": bounds(options, "max_threshold", "min_threshold"),
        "summary": f"{what}: {{{{ value | number }}}}",
    }
    if doc_count:
        converted["min_events"] = int(doc_count)
    return {**converted, "extra_where": where} if where else converted


def percentage_match(options: RuleOptions) -> Converted:
    matching = convert_filters(options, "match_bucket_filter")
    if matching is None:
        raise options.refuse("type 'percentage_match' needs 'match_bucket_filter'", "type")
    converted: Converted = {
        "window": format_duration(aggregation_window(options)),
        "signal": {"ratio": {"of": matching}},
        "threshold": bounds(options, "max_percentage", "min_percentage", scale=100.0),
        "summary": "{{ value | percent }} of the documents match",
    }
    denominator = number(options, "min_denominator")
    if denominator:
        converted["min_events"] = int(denominator)
    return converted


def metric_signal(options: RuleOptions) -> tuple[Any, dict[str, Any] | None]:
    """The signal of ``metric_agg_type`` over ``metric_agg_key``, and a filter it needs."""
    if options.has("metric_agg_script"):
        raise options.refuse(
            "metric_agg_script runs a script in Elasticsearch; watcher aggregates fields", "metric_agg_script"
        )
    field, kind = options.get("metric_agg_key"), options.get("metric_agg_type")
    if not isinstance(field, str):
        raise options.refuse(f"type '{options.get('type')}' needs 'metric_agg_key'", "type")
    if kind in METRIC_STATS:
        return {"stat": {"field": field, "fn": kind}}, None
    if kind == "cardinality":
        return {"cardinality": {"field": field}}, None
    if kind == "value_count":
        return "count", {field: {"exists": True}}
    if kind == "percentiles":
        return {"percentile": {"field": field, "q": required_number(options, "percentile_range")}}, None
    raise options.refuse(f"metric_agg_type {kind!r} has no watcher signal", "metric_agg_type")


def aggregation_window(options: RuleOptions) -> timedelta:
    """What ``metric_aggregation`` and ``percentage_match`` compute over: ``buffer_time`` (or
    ``run_every`` with ``use_run_every_query_size``); a ``bucket_interval`` is approximated."""
    for key in ("allow_buffer_time_overlap", "sync_bucket_interval"):
        if options.get(key) is not None:
            options.ignored(f"{key}: watcher's windows are aligned to 'every'", key)
    if options.has("bucket_interval"):
        interval = required_duration(options, "bucket_interval")
        options.approximated(
            f"bucket_interval {format_duration(interval)} becomes the window: ElastAlert 2 checks each "
            "bucket of the query range; watcher checks the latest window of that length at each 'every'",
            "bucket_interval",
        )
        return interval
    key = "run_every" if options.get("use_run_every_query_size") else "buffer_time"
    window = options.duration(key)
    if window is None:
        raise options.refuse(
            f"type '{options.get('type')}' computes over {key}, which neither the rule nor --config sets",
            "type",
        )
    return window


RULE_TYPES: dict[str, Callable[[RuleOptions], Converted]] = {
    "frequency": frequency,
    "flatline": flatline,
    "spike": spike,
    "spike_aggregation": spike_aggregation,
    "cardinality": cardinality,
    "metric_aggregation": metric_aggregation,
    "percentage_match": percentage_match,
}

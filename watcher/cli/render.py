"""``watcher render``: show exactly what a receiver would send for a rule, from a sample incident.

The sample incident is built from the rule alone (its threshold, a value past it, its group
labels, a series that crosses the threshold), so a template can be tried before anything fires.
The message is composed by the channel's own notifier, nothing is sent.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from watcher.channels import escape_console
from watcher.cli.common import LoadFailedError, add_config_argument, load
from watcher.config import (
    ConsoleReceiver,
    EmailReceiver,
    Receiver,
    SlackReceiver,
    SmsReceiver,
    WebhookReceiver,
)
from watcher.detect.evidence import shows_evidence
from watcher.duration import format_duration
from watcher.incidents.acks import Ack
from watcher.incidents.machine import incident_labels
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.series import MAX_SAMPLES, SERIES_KEY
from watcher.notify.base import Notification
from watcher.notify.chart import render_chart
from watcher.notify.console import ConsoleNotifier
from watcher.notify.email import POLICY, EmailNotifier
from watcher.notify.registry import build_notifier
from watcher.notify.segments import encoding, segments
from watcher.notify.slack import SlackNotifier
from watcher.notify.sms import SmsNotifier
from watcher.notify.webhook import WebhookNotifier
from watcher.query import Sample
from watcher.query_filters import And, Eq, Filter, In, Or, Range
from watcher.rules.evidence import cleaned
from watcher.rules.models import Rule
from watcher.rules.trend_specs import NEWEST
from watcher.templates import RenderError, Templates

# Settings for a channel rendered without a configured receiver: shape only, never used to send.
PLACEHOLDERS: dict[str, BaseModel] = {
    "console": ConsoleReceiver(),
    "slack": SlackReceiver.model_validate({"token": "xoxb-placeholder", "channel": "#alerts"}),
    "email": EmailReceiver.model_validate(
        {"to": ["oncall@example.com"], "from": "watcher@example.com", "host": "localhost"}
    ),
    "sms": SmsReceiver.model_validate(
        {"to": ["+15550100"], "from": "+15550199", "account_sid": "AC-placeholder", "auth_token": "x"}
    ),
    "webhook": WebhookReceiver.model_validate({"url": "https://example.com/hook"}),
}

EPILOG = """\
examples:
  watcher render prediction-5xx-rate                            the Slack message (Block Kit JSON)
  watcher render prediction-5xx-rate --channel email            the email, as MIME
  watcher render prediction-5xx-rate --event resolved --channel sms
  watcher render prediction-5xx-rate --receiver ml-slack -o chart.png   a receiver's overrides; the chart
  watcher render prediction-5xx-rate --group model_version=v3
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render",
        help="print what a notification for a rule would look like, from a sample incident",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(parser)
    parser.add_argument("rule", metavar="RULE", help="the rule's name")
    parser.add_argument(
        "--event", choices=[e.value for e in Event], default="firing", help="which message (default: firing)"
    )
    parser.add_argument(
        "--channel",
        choices=sorted(PLACEHOLDERS),
        default="slack",
        help="the channel's message, with placeholder settings (default: slack)",
    )
    parser.add_argument(
        "--receiver", metavar="NAME", help="a receiver of the config (its kind and overrides)"
    )
    parser.add_argument(
        "--group", action="append", default=[], metavar="LABEL=VALUE", help="a group label of the sample"
    )
    parser.add_argument(
        "--acked",
        action="store_true",
        help="the sample acknowledged (`watcher ack`, Slack's button); with --event update, the reply "
        "telling the ack",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="PNG", help="also write the chart to this file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config, strict=False)
    except LoadFailedError as failed:
        return failed.code
    rules = {rule.name: rule for rule in loaded.rules}
    rule = rules.get(args.rule)
    if rule is None:
        known = ", ".join(sorted(rules)) or "none"
        print(f"watcher render: no rule named {args.rule!r} (rules: {known})", file=sys.stderr)
        return 1
    try:
        name, receiver = _receiver(args, loaded.config.receivers)
        group = _group(rule, args.group)
    except ValueError as err:
        print(f"watcher render: {err}", file=sys.stderr)
        return 2
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    sample = sample_incident(rule, Event(args.event), now, group)
    if args.acked:
        sample = _acked(sample, Event(args.event), now)
    notification = sample_notification(sample, Event(args.event), now, name)
    templates = Templates(loaded.config.templates, loaded.rules, loaded.config.sources)
    try:
        # Control characters from the rule or log data are shown escaped, never sent to the terminal.
        print(escape_console(preview(build_notifier(name, receiver, templates), notification)))
    except RenderError as err:
        print(f"watcher render: {err}", file=sys.stderr)
        return 1
    if args.output is not None:
        return _write_chart(args.output, sample, rule)
    return 0


def preview(notifier: object, notification: Notification) -> str:
    """What ``notifier`` would send for ``notification``, as text."""
    if isinstance(notifier, SlackNotifier):
        return json.dumps(notifier.compose(notification), indent=2, ensure_ascii=False)
    if isinstance(notifier, EmailNotifier):
        return notifier.compose(notification).as_string(policy=POLICY.clone(linesep="\n"))
    if isinstance(notifier, SmsNotifier):
        text = notifier.compose(notification)
        print(f"({segments(text)} SMS segment(s), {encoding(text)})", file=sys.stderr)
        return text
    if isinstance(notifier, WebhookNotifier):
        return notifier.body(notification).decode()
    assert isinstance(notifier, ConsoleNotifier)
    return notifier.compose(notification)


def _receiver(args: argparse.Namespace, receivers: dict[str, Receiver]) -> tuple[str, Receiver]:
    if args.receiver is None:
        return args.channel, Receiver.model_validate({args.channel: PLACEHOLDERS[args.channel]})
    receiver = receivers.get(args.receiver)
    if receiver is None:
        raise ValueError(f"no receiver named {args.receiver!r} (receivers: {', '.join(sorted(receivers))})")
    return args.receiver, receiver


def _group(rule: Rule, pairs: list[str]) -> dict[str, str]:
    given = {}
    for pair in pairs:
        label, sep, value = pair.partition("=")
        if not sep or not label:
            raise ValueError(f"--group takes LABEL=VALUE, got {pair!r}")
        given[label] = value
    return {label: given.get(label, "example") for label in rule.group_by} | given


def _acked(sample: Incident, event: Event, now: datetime) -> Incident:
    """The sample as an acknowledged incident (a firing one: a resolve undoes an ack)."""
    if event is Event.RESOLVED:
        return sample
    ack = Ack.of(sample, getpass.getuser(), "looking into it", now - timedelta(minutes=5))
    return sample.evolve(ack=ack.to_json(), acknowledged_now=event is Event.UPDATE)


def _write_chart(path: Path, sample: Incident, rule: Rule) -> int:
    png = render_chart(sample, rule.signal.kind)
    if png is None:
        print("watcher render: the sample has no series to chart", file=sys.stderr)
        return 1
    try:
        path.write_bytes(png)
    except OSError as exc:
        print(f"watcher render: cannot write the chart to {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"chart written to {path}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- the sample incident


def sample_incident(rule: Rule, event: Event, now: datetime, group: dict[str, str]) -> Incident:
    """A plausible incident of ``rule``: past its threshold since ``for`` + a few evaluations ago,
    with a series of recent values (resolved: back under the threshold for the last evaluations)."""
    value, threshold, above = _numbers(rule)
    firing_for = 12 * rule.every
    fired_at = now - firing_for
    started_at = fired_at - rule.for_
    resolved_at = now if event is Event.RESOLVED else None
    return Incident(
        fingerprint=fingerprint(rule.name, group),
        rule=rule.name,
        group=group,
        labels=incident_labels(rule, group),
        annotations=dict(rule.annotations),
        severity=rule.severity,
        state=State.RESOLVED if resolved_at else State.FIRING,
        value=value if resolved_at is None else _normal(threshold, above),
        threshold=threshold,
        started_at=started_at,
        fired_at=fired_at,
        resolved_at=resolved_at,
        details={
            **_found(rule, now, value, threshold),
            SERIES_KEY: _series(rule, now, started_at, resolved_at, value, threshold, above),
        },
        evidence=_evidence(rule, fired_at, group),
    )


def _evidence(rule: Rule, at: datetime, group: dict[str, str]) -> tuple[Sample, ...]:
    """Sample documents as the rule would show them: its group, values its filters (and a ratio's
    ``of``) match, a bearer token to show the redaction; only ``fields`` when it names some."""
    if not shows_evidence(rule):
        return ()
    spec, matched = rule.evidence, _matching(rule.where)
    if rule.signal.ratio is not None:
        matched |= _matching(rule.signal.ratio.of)
    documents = []
    for k in range(spec.size):
        document = {"@timestamp": (at - k * rule.every / 3).isoformat(), **group, **matched,
                    "message": "a sample log line", "authorization": "Bearer sample-token"}  # fmt: skip
        if spec.fields:
            document = {name: document.get(name, f"<{name}>") for name in spec.fields}
        documents.append(document)
    return cleaned(documents, spec.redact or ())


def _matching(flt: Filter) -> dict[str, Any]:
    """Field values that ``flt`` matches (its first alternative)."""
    if isinstance(flt, Eq):
        return {flt.field: flt.value}
    if isinstance(flt, In) and flt.values:
        return {flt.field: flt.values[0]}
    if isinstance(flt, Range):
        low = flt.gte if flt.gte is not None else (flt.gt + 1 if flt.gt is not None else None)
        high = flt.lte if flt.lte is not None else (flt.lt - 1 if flt.lt is not None else None)
        value = low if low is not None else high
        return {} if value is None else {flt.field: int(value) if value.is_integer() else value}
    if isinstance(flt, And):
        return {name: value for child in flt.filters for name, value in _matching(child).items()}
    if isinstance(flt, Or) and flt.filters:
        return _matching(flt.filters[0])
    return {}


def sample_notification(incident: Incident, event: Event, now: datetime, receiver: str) -> Notification:
    return Notification(
        id="render-sample",
        receiver=receiver,
        event=event,
        incidents=(incident,),
        created_at=now,
        thread_key=f"{incident.fingerprint}|{incident.started_at.isoformat()}",
        group_labels=dict(incident.group),
    )


def _numbers(rule: Rule) -> tuple[float, float, bool]:
    """(a value that alerts, the threshold, whether alerting is above it)."""
    if rule.threshold is not None:
        if rule.threshold.above is not None:
            bound = rule.threshold.above
            return (bound * 1.42 if bound else 1.0), bound, True
        below = rule.threshold.below or 0.0
        return below * 0.6, below, False
    if rule.flatline is not None:
        return rule.flatline.below * 0.2, rule.flatline.below, False
    threshold = _ml_threshold(rule)
    if rule.forecast is not None:  # not crossed yet: forecast to
        above = rule.forecast.above is not None
        return threshold * (0.9 if above else 1.1), threshold, above
    return threshold * 1.6, threshold, True


def _found(rule: Rule, now: datetime, value: float, threshold: float) -> dict[str, Any]:
    """What a forecast or canary rule's finding tells beyond its value: the predicted crossing and
    the forecast drawn; the baseline and candidate with the test's p-value."""
    if rule.forecast is not None:
        horizon, steps = rule.forecast.horizon, 12
        crossing = now + horizon / 2
        ahead = [
            [(now + k * horizon / steps).isoformat(), value + (threshold - value) * k / 6] for k in range(13)
        ]
        return {"method": rule.forecast.method, "limit": threshold, "crossing_at": crossing.isoformat(),
                "crossing_in": format_duration(horizon / 2), "forecast": ahead}  # fmt: skip
    if rule.canary is None:
        return {}
    spec = rule.canary
    candidate = "v-new" if spec.candidate == NEWEST else spec.candidate
    found = {"field": spec.field, "baseline": spec.baseline, "candidate": candidate, "p_value": 0.0004}
    if spec.feature is not None:
        return {**found, "signal": f"{spec.method} drift of {spec.feature.name}", "drift": value,
                "test": "chi-square"}  # fmt: skip
    test = "two-proportion z-test" if rule.signal.ratio is not None else "Mann-Whitney U"
    return {**found, "baseline_value": threshold * 0.6, "candidate_value": value, "test": test}


def _ml_threshold(rule: Rule) -> float:
    if rule.spike is not None:
        zscore = rule.spike.zscore
        return zscore.above if zscore is not None else (rule.spike.factor or 2.0)
    if rule.drift is not None:
        return rule.drift.critical or rule.drift.warn or 0.25
    if rule.validity is not None:
        spec = rule.validity
        return spec.unseen_share_above or spec.missing_share_above or spec.out_of_range_share_above or 0.01
    if rule.forecast is not None:
        return rule.forecast.above if rule.forecast.above is not None else rule.forecast.below or 0.0
    if rule.canary is not None:
        return rule.canary.margin or 0.05
    return 1.0


def _normal(threshold: float, above: bool) -> float:
    return threshold * 0.45 if above else (threshold * 1.8 if threshold else 1.0)


def _series(
    rule: Rule,
    now: datetime,
    started: datetime,
    resolved: datetime | None,
    value: float,
    threshold: float,
    above: bool,
) -> list[list[Any]]:
    rng = random.Random(rule.name)  # the same sample every time for a rule
    normal, points = _normal(threshold, above), []
    for index in range(MAX_SAMPLES):
        at = now - (MAX_SAMPLES - 1 - index) * rule.every
        alerting = started <= at and (resolved is None or at < resolved - 2 * rule.every)
        level = value if alerting else normal
        noisy = level * (1 + 0.08 * math.sin(index / 3) + 0.06 * (rng.random() - 0.5))
        points.append([at.isoformat(), round(max(noisy, 0.0), 6)])
    return points

"""``watcher routes``: which receivers a set of labels reaches (like ``amtool config routes test``)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from watcher.cli.common import LoadFailedError, add_config_argument, load_config_only, parse_time
from watcher.config import Config, Route
from watcher.duration import format_duration
from watcher.routing.matchers import LABEL_NAME
from watcher.routing.mute import TimeMute
from watcher.routing.tree import RouteMatch, resolve

EPILOG = """\
examples:
  watcher routes test severity=critical team=ml
  watcher routes test rule=prediction-5xx-rate --verify-receivers oncall-sms,ml-slack
  watcher routes test team=ml --at 2026-03-07T22:00:00Z
  watcher routes show
An incident's labels are its group labels plus rule, severity, source and the rule's labels.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "routes",
        help="test the route tree: which receivers labels reach",
        description="Show the route tree of watcher.yaml, or test which receivers a set of labels reaches.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="routes_command", metavar="COMMAND", required=True)
    test = commands.add_parser("test", help="print the receivers a set of labels reaches")
    add_config_argument(test)
    test.add_argument("labels", nargs="*", metavar="NAME=VALUE", help="the labels of an incident")
    test.add_argument(
        "--verify-receivers",
        metavar="R1,R2",
        help="exit 1 unless exactly these receivers (in this order) are reached",
    )
    test.add_argument("--verbose", "-v", action="store_true", help="also print grouping and timings")
    test.add_argument(
        "--at",
        type=parse_time,
        metavar="TIME",
        help="also say whether each receiver is muted then by its route's time intervals (ISO 8601)",
    )
    test.set_defaults(func=run_test)
    show = commands.add_parser("show", help="print the route tree")
    add_config_argument(show)
    show.set_defaults(func=run_show)


def parse_labels(items: list[str]) -> dict[str, str]:
    """``name=value`` arguments as a label set; ``ValueError`` with the offending argument."""
    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not LABEL_NAME.fullmatch(name):
            raise ValueError(f"invalid label {item!r}: expected name=value, e.g. severity=critical")
        labels[name] = value
    return labels


def run_test(args: argparse.Namespace) -> int:
    try:
        labels = parse_labels(args.labels)
        config = load_config_only(args.config, secrets=False)
    except ValueError as exc:
        print(f"watcher routes test: {exc}", file=sys.stderr)
        return 2
    except LoadFailedError as failed:
        return failed.code
    matches = resolve(config.route, labels)
    receivers = [match.receiver for match in matches]
    print(",".join(receivers))
    if args.verbose:
        for match in matches:
            path = "/".join(str(step) for step in match.path) or "root"
            print(
                f"  {match.receiver}: route {path}, group_by [{', '.join(match.group_by)}] "
                f"as {match.group_labels(labels) or '{}'}, group_wait {format_duration(match.group_wait)}, "
                f"group_interval {format_duration(match.group_interval)}, "
                f"repeat_interval {format_duration(match.repeat_interval)}"
            )
    if args.at is not None:
        for match in matches:
            print(f"  {match.receiver}: {muted_at(config, match, args.at)}")
    if args.verify_receivers is not None:
        expected = [name.strip() for name in args.verify_receivers.split(",") if name.strip()]
        if expected != receivers:
            print(f"expected {','.join(expected)}, got {','.join(receivers)}", file=sys.stderr)
            return 1
    return 0


def muted_at(config: Config, match: RouteMatch, at: datetime) -> str:
    """Whether the route ``match`` sends at ``at``, and why not."""
    intervals = {named.name: named.time_intervals for named in config.time_intervals}
    return TimeMute(match, intervals, at).reason() or f"sends at {at.isoformat()}"


def run_show(args: argparse.Namespace) -> int:
    try:
        config = load_config_only(args.config, secrets=False)
    except LoadFailedError as failed:
        return failed.code
    for line in tree_lines(config.route):
        print(line)
    return 0


def tree_lines(route: Route, depth: int = 0) -> list[str]:
    """One line per route node, indented by depth: its matchers, receiver and settings it sets."""
    conditions = [f"{name}={value}" for name, value in route.match.items()]
    conditions += [str(matcher) for matcher in route.matchers]
    parts = [f"{{{', '.join(conditions)}}}" if conditions else ("(root)" if depth == 0 else "{}")]
    if route.receiver:
        parts.append(f"-> {route.receiver}")
    if route.group_by is not None:
        parts.append(f"group_by [{', '.join(route.group_by)}]")
    for name in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(route, name)
        if value is not None:
            parts.append(f"{name} {format_duration(value)}")
    if route.continue_:
        parts.append("continue")
    for name in ("mute_time_intervals", "active_time_intervals"):
        if names := getattr(route, name):
            parts.append(f"{name} [{', '.join(names)}]")
    lines = ["  " * depth + " ".join(parts)]
    for child in route.routes:
        lines += tree_lines(child, depth + 1)
    return lines

"""``watcher silence add|ls|expire``: silences in the state file, usable while the daemon runs."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta

from watcher.cli.backtest import parse_time
from watcher.cli.common import LoadFailedError, add_config_argument, load_config_only, open_state
from watcher.duration import format_duration, parse_duration
from watcher.routing.matchers import Matcher
from watcher.routing.silences import Silence, SilenceError, SilenceStore, new_silence

EPILOG = """\
examples:
  watcher silence add 'rule=prediction-5xx-rate' model_version=v3 --duration 2h -m "deploying v4"
  watcher silence add 'severity=~warning|info' 'team!=ml' --end 2026-01-05T18:00Z -m "maintenance"
  watcher silence ls
  watcher silence expire 3f2a9c1b7e4d
Silenced incidents are still tracked; they are notified when the silence ends if still firing.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "silence",
        help="add, list or expire silences",
        description="Silences mute the notifications of incidents whose labels match all their matchers "
        "(name=value, name!=value, name=~regex, name!~regex) between a start and an end.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="silence_command", metavar="COMMAND", required=True)
    add = commands.add_parser("add", help="add a silence and print its id")
    add_config_argument(add)
    add.add_argument("matchers", nargs="+", metavar="MATCHER", help="e.g. severity=critical 'team=~ml|data'")
    add.add_argument("--comment", "-m", required=True, help="why (shown in `watcher silence ls`)")
    add.add_argument("--author", "-a", default=None, help="who (default: the current user)")
    add.add_argument("--start", type=parse_time, metavar="ISO8601", help="when it starts (default: now)")
    ends = add.add_mutually_exclusive_group()
    ends.add_argument("--duration", "-d", default="1h", help="how long it lasts (default: 1h)")
    ends.add_argument("--end", type=parse_time, metavar="ISO8601", help="when it ends")
    add.set_defaults(func=run_add)
    ls = commands.add_parser("ls", help="list pending and active silences")
    add_config_argument(ls)
    ls.add_argument("--expired", action="store_true", help="include expired silences")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=run_ls)
    expire = commands.add_parser("expire", help="end silences now")
    add_config_argument(expire)
    expire.add_argument("ids", nargs="+", metavar="ID")
    expire.set_defaults(func=run_expire)


def run_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        matchers = [Matcher.parse(text) for text in args.matchers]
        starts = args.start or now
        ends = args.end or starts + _duration(args.duration)
        author = args.author or getpass.getuser()
        silence = new_silence(matchers, starts, ends, author, args.comment, now)
    except ValueError as exc:
        print(f"watcher silence add: {exc}", file=sys.stderr)
        return 2
    try:
        state = open_state(load_config_only(args.config), "silence add")
    except LoadFailedError:
        return 1
    with state:
        SilenceStore(state).add(silence)
    print(silence.id)
    return 0


def _duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"--duration must be longer than 0s, got {text!r}")
    return value


def run_ls(args: argparse.Namespace) -> int:
    try:
        state = open_state(load_config_only(args.config), "silence ls")
    except LoadFailedError:
        return 1
    now = datetime.now(UTC)
    with state:
        silences = SilenceStore(state).list(now, expired=args.expired)
    if args.format == "json":
        for silence in silences:
            print(json.dumps(silence_record(silence, now)))
        return 0
    print(silence_table(silences, now))
    return 0


def run_expire(args: argparse.Namespace) -> int:
    try:
        state = open_state(load_config_only(args.config), "silence expire")
    except LoadFailedError:
        return 1
    code = 0
    with state:
        store = SilenceStore(state)
        for silence_id in args.ids:
            try:
                store.expire(silence_id, datetime.now(UTC))
            except SilenceError as exc:
                print(f"watcher silence expire: {exc}", file=sys.stderr)
                code = 1
                continue
            print(f"expired {silence_id}")
    return code


def silence_record(silence: Silence, now: datetime) -> dict[str, object]:
    return {
        "id": silence.id,
        "state": silence.state(now),
        "matchers": [str(matcher) for matcher in silence.matchers],
        "starts_at": _iso(silence.starts_at),
        "ends_at": _iso(silence.ends_at),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }


def silence_table(silences: list[Silence], now: datetime) -> str:
    if not silences:
        return "no silences"
    header = ("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "AUTHOR", "COMMENT")
    rows = [
        (
            s.id,
            s.state(now),
            " ".join(str(m) for m in s.matchers),
            _iso(s.starts_at),
            f"{_iso(s.ends_at)} ({_left(s, now)})",
            s.created_by,
            s.comment,
        )
        for s in silences
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def _left(silence: Silence, now: datetime) -> str:
    if silence.state(now) == "expired":
        return "ended"
    return f"{format_duration(silence.ends_at - now)} left"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

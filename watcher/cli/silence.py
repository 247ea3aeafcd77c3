"""``watcher silence add|ls|extend|expire``: silences in the state file, usable while the daemon runs.

None of them needs a secret: the config is loaded with its ``${VAR}`` left unresolved when unset.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta

from watcher.channels import escape_line
from watcher.cli.common import (
    add_config_argument,
    columns,
    load_failure_exits,
    parse_time,
    state_without_secrets,
)
from watcher.duration import format_duration, parse_duration
from watcher.incidents.state import StateStore
from watcher.routing.matchers import Matcher
from watcher.routing.silences import Silence, SilenceError, SilenceStore, new_silence

EPILOG = """\
examples:
  watcher silence add 'rule=prediction-5xx-rate' model_version=v3 --duration 2h -m "deploying v4"
  watcher silence add 'severity=~warning|info' 'team!=ml' --end 2026-01-05T18:00Z -m "maintenance"
  watcher silence ls                                  (or: watcher silence list)
  watcher silence ls --rule prediction-5xx-rate       the silences that can mute this rule
  watcher silence ls team=ml                          the silences with this matcher
  watcher silence extend 3f2a9c1b7e4d --duration 1h   one hour more (a new id replaces the old one)
  watcher silence expire 3f2a9c1b7e4d
Silenced incidents are still tracked; they are notified when the silence ends if still firing.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "silence",
        help="add, list, extend or expire silences",
        description="Silences mute the notifications of incidents whose labels match all their matchers "
        "(name=value, name!=value, name=~regex, name!~regex) between a start and an end.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="silence_command", metavar="COMMAND", required=True)
    _add_parser(commands)
    _ls_parser(commands)
    extend = commands.add_parser("extend", help="make a silence last longer (prints the id that replaces it)")
    add_config_argument(extend)
    extend.add_argument("id", metavar="ID", help="the silence to extend (see `watcher silence ls`)")
    extend.add_argument(
        "--duration",
        "-d",
        required=True,
        help="how much longer it lasts, e.g. 30m, 2h (from its current end)",
    )
    extend.set_defaults(func=run_extend)
    expire = commands.add_parser("expire", help="end silences now")
    add_config_argument(expire)
    expire.add_argument("ids", nargs="+", metavar="ID", help="the silences to end (see `watcher silence ls`)")
    expire.set_defaults(func=run_expire)


def _add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _ls_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ls = commands.add_parser("ls", aliases=["list"], help="list pending and active silences")
    add_config_argument(ls)
    ls.add_argument(
        "matchers",
        nargs="*",
        metavar="MATCHER",
        help="only silences that have all these matchers, e.g. team=ml",
    )
    ls.add_argument("--rule", metavar="NAME", help="only silences that can mute incidents of this rule")
    ls.add_argument("--expired", action="store_true", help="include expired silences")
    ls.add_argument(
        "--format", choices=("text", "json"), default="text", help="a table, or one JSON object per line"
    )
    ls.set_defaults(func=run_ls)


@load_failure_exits
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
    state = state_without_secrets(args, "silence add")
    with state:
        SilenceStore(state).add(silence)
    print(silence.id)
    return 0


def _duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"--duration must be longer than 0s, got {text!r}")
    return value


@load_failure_exits
def run_ls(args: argparse.Namespace) -> int:
    try:
        wanted = [Matcher.parse(text) for text in args.matchers]
    except ValueError as exc:
        print(f"watcher silence ls: {exc}", file=sys.stderr)
        return 2
    state = state_without_secrets(args, "silence ls")
    now = datetime.now(UTC)
    with state:
        silences = SilenceStore(state).list(now, expired=args.expired)
    silences = [s for s in silences if set(wanted) <= set(s.matchers) and _may_mute(s, args.rule)]
    if args.format == "json":
        for silence in silences:
            print(json.dumps(silence_record(silence, now)))
        return 0
    print(silence_table(silences, now))
    return 0


def _may_mute(silence: Silence, rule: str | None) -> bool:
    """Whether ``silence`` can mute an incident of ``rule``: its matchers on ``rule`` accept it."""
    on_rule = [matcher for matcher in silence.matchers if matcher.name == "rule"]
    return rule is None or all(matcher.matches({"rule": rule}) for matcher in on_rule)


@load_failure_exits
def run_extend(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        more = _duration(args.duration)
    except ValueError as exc:
        print(f"watcher silence extend: {exc}", file=sys.stderr)
        return 2
    state = state_without_secrets(args, "silence extend")
    with state:
        try:
            longer = extend(state, args.id, more, now)
        except SilenceError as exc:
            print(f"watcher silence extend: {exc}", file=sys.stderr)
            return 1
    print(longer.id)
    print(f"silence {args.id} extended until {_iso(longer.ends_at)} as {longer.id}", file=sys.stderr)
    return 0


def extend(state: StateStore, silence_id: str, more: timedelta, now: datetime) -> Silence:
    """A copy of a pending or active silence ending ``more`` later, stored; the old one expired.
    The copy is stored first, so the incidents it mutes are never unmuted in between."""
    store = SilenceStore(state)
    found = {silence.id: silence for silence in store.list(now)}
    if silence_id not in found:
        raise SilenceError(f"no pending or active silence {silence_id!r} (see `watcher silence ls`)")
    old = found[silence_id]
    comment = old.comment
    longer = new_silence(old.matchers, old.starts_at, old.ends_at + more, old.created_by, comment, now)
    store.add(longer)
    store.expire(old.id, now)
    return longer


@load_failure_exits
def run_expire(args: argparse.Namespace) -> int:
    state = state_without_secrets(args, "silence expire")
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
            escape_line(" ".join(str(m) for m in s.matchers)),
            _iso(s.starts_at),
            f"{_iso(s.ends_at)} ({_left(s, now)})",
            escape_line(s.created_by),
            escape_line(s.comment),
        )
        for s in silences
    ]
    return columns([header, *rows])


def _left(silence: Silence, now: datetime) -> str:
    if silence.state(now) == "expired":
        return "ended"
    return f"{format_duration(silence.ends_at - now)} left"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

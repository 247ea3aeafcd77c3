"""``watcher ack``: acknowledge an incident (its repeats stop), or ``--undo`` an ack.

Works on the configured state while the daemon runs, without the receivers' secrets: the ack and
the updates of the incident's Slack messages are written in one transaction, and the daemon's
outbox sends them. An ack holds until the incident changes (resolves, changes severity, starts or
stops flapping) or its ``--for`` runs out (``watcher.incidents.acks``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from watcher.cli.common import add_config_argument, load_config_only, load_failure_exits, open_state
from watcher.config import Config
from watcher.duration import parse_duration
from watcher.incidents.model import RAISED, Incident
from watcher.incidents.state import StateStore
from watcher.routing.acknowledge import AcknowledgeError, AlreadyAcknowledgedError, acknowledge, unacknowledge

EPILOG = """\
examples:
  watcher ack 3f2a9c1b7e4d5a60 -m "looking into it"          one incident, by fingerprint
  watcher ack --rule prediction-5xx-rate --group model_version=v3 -m "rolling back v3" --for 2h
  watcher ack --rule prediction-5xx-rate -m "known: upstream outage"   every open incident of the rule
  watcher ack --undo 3f2a9c1b7e4d5a60                         take the ack back: repeats start again,
                                                             and its Slack threads are told
  watcher ack --replace 3f2a9c1b7e4d5a60 -m "handing over" --for 4h   take over an ack that holds
Fingerprints are in `watcher incidents --format json`. An ack stops repeat notifications until the
incident changes state (resolves, escalates or de-escalates, starts or stops flapping) or --for ends.
An incident someone already acknowledged keeps that ack (who took it, their message) unless --replace.
"""

USAGE_ERROR = 2


class _RefusedError(Exception):
    """What the command line asks cannot be done; the message says why."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ack",
        help="acknowledge incidents: their repeat notifications stop",
        description="Acknowledge open incidents, by fingerprint or by rule (and group labels). The ack is "
        "kept in the state, shown by `watcher incidents` and in later notifications, and said in the "
        "incident's Slack thread.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(parser)
    parser.add_argument("fingerprint", nargs="?", metavar="FINGERPRINT", help="the incident to acknowledge")
    parser.add_argument("--rule", metavar="NAME", help="acknowledge the open incidents of this rule")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="with --rule: only incidents whose group has this label value (repeatable)",
    )
    parser.add_argument("--message", "-m", default="", help="what you are doing about it (required)")
    parser.add_argument("--for", dest="duration", metavar="DURATION", help="how long the ack lasts, e.g. 2h")
    parser.add_argument(
        "--by", metavar="NAME", help="who acknowledges, or takes an ack back (default: the current user)"
    )
    parser.add_argument(
        "--undo",
        action="store_true",
        help="take the ack of these incidents back (said in their Slack threads)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="take over an ack that holds (new message, --for, --by); without it such incidents keep theirs",
    )
    parser.set_defaults(func=run)


@load_failure_exits
def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        until = _until(args, now)
        config = load_config_only(args.config, secrets=False)
        with open_state(config, "ack") as state:
            found = _targets(state, args)
            if args.undo:
                return _undo(state, found, args.by or getpass.getuser(), now, _slack(config))
            return _acknowledge(state, found, args, now, until, _slack(config))
    except (_RefusedError, AcknowledgeError) as refused:
        print(f"watcher ack: {refused}", file=sys.stderr)
        return USAGE_ERROR


def _acknowledge(
    state: StateStore,
    found: Sequence[Incident],
    args: argparse.Namespace,
    now: datetime,
    until: datetime | None,
    slack: Sequence[str],
) -> int:
    """Acknowledge ``found``. One whose ack holds keeps it, unless ``--replace``: someone took it and
    said why, and a second ack by rule would silently take that over. Refused when none was taken."""
    by, taken, kept = args.by or getpass.getuser(), 0, []
    for incident in found:
        try:
            ack, updates = acknowledge(
                state, incident, by, args.message, now, until, slack, once=not args.replace
            )
        except AlreadyAcknowledgedError as held:
            kept.append(f"{held}: {held.ack.message!r} (--replace takes it over)")
            continue
        taken += 1
        said = f", {len(updates)} Slack update(s) queued" if updates else ""
        ends = f" until {ack.until:%Y-%m-%dT%H:%M:%SZ}" if ack.until else ""
        print(f"acknowledged {incident.fingerprint} ({_name(incident)}){ends}{said}")
    if kept and not taken:
        raise _RefusedError("; ".join(kept))
    for line in kept:
        print(f"watcher ack: kept: {line}", file=sys.stderr)
    return 0


def _until(args: argparse.Namespace, now: datetime) -> datetime | None:
    """When the ack ends, checking the command line first (nothing is opened for a bad one)."""
    if (args.fingerprint is None) == (args.rule is None):
        raise _RefusedError("name one incident by FINGERPRINT, or incidents by --rule (not both)")
    if args.group and args.rule is None:
        raise _RefusedError("--group needs --rule")
    if args.undo and args.replace:
        raise _RefusedError("--undo takes an ack back; --replace takes one over: use one")
    if not args.undo and not args.message.strip():
        raise _RefusedError('an ack needs a message saying what you do about it: -m "…"')
    if args.duration is None:
        return None
    try:
        length = parse_duration(args.duration)
    except ValueError as exc:
        raise _RefusedError(f"--for: {exc}") from None
    if length <= timedelta(0):
        raise _RefusedError(f"--for must be longer than 0s, got {args.duration!r}")
    return now + length


def _targets(state: StateStore, args: argparse.Namespace) -> list[Incident]:
    if args.fingerprint is not None:
        incident = state.incident(args.fingerprint)
        if incident is None:
            raise _RefusedError(
                f"unknown fingerprint {args.fingerprint!r} (see `watcher incidents --format json`)"
            )
        return [incident]
    wanted = dict(_label(text) for text in args.group)
    found = [
        incident
        for incident in state.incidents(rule=args.rule, states=RAISED)
        if all(incident.group.get(name) == value for name, value in wanted.items())
    ]
    if not found:
        where = "".join(f" {name}={value}" for name, value in wanted.items())
        raise _RefusedError(f"no open incident of rule {args.rule!r}{where} (see `watcher incidents`)")
    return found


def _label(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise _RefusedError(f"--group {text!r}: write LABEL=VALUE, e.g. model_version=v3")
    return name, value


def _undo(state: StateStore, found: Sequence[Incident], by: str, now: datetime, slack: Sequence[str]) -> int:
    undone = [(incident, unacknowledge(state, incident, by, now, slack)) for incident in found]
    if not any(removed for _, removed in undone):
        raise _RefusedError("no ack to undo for " + ", ".join(incident.fingerprint for incident in found))
    for incident, removed in undone:
        if removed is not None:
            said = f", {len(removed[1])} Slack update(s) queued" if removed[1] else ""
            print(f"ack of {incident.fingerprint} ({_name(incident)}) by {removed[0].by} undone{said}")
    return 0


def _slack(config: Config) -> list[str]:
    return [name for name, receiver in config.receivers.items() if receiver.slack is not None]


def _name(incident: Incident) -> str:
    labels = ",".join(f"{name}={value}" for name, value in sorted(incident.group.items()))
    return f"{incident.rule} {labels}" if labels else incident.rule

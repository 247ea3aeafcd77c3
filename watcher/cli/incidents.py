"""``watcher incidents``: incidents in the state file, their last notification and its delivery.

Read-only, so it is safe while the daemon runs. A notification's status is ``delivered``,
``pending`` (with its attempts, next try and last error) or ``dead`` (a dead letter: delivery
gave up, and the ``watcher:receiver-dead`` incident says so). A firing incident not notified
yet is either waiting for its group's flush, or muted by a silence or an inhibition. The states
nodata and error (a rule's ``on_nodata`` / ``on_error``) are told like firing; a flapping incident
shows ``(flapping)`` after its state, an acknowledged one ``(acked)`` and who, when, until when and
why (``watcher ack``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watcher.channels import escape_line
from watcher.cli.common import LoadFailedError, add_config_argument, load_config_only, open_state
from watcher.config import InhibitRule
from watcher.incidents import acks
from watcher.incidents.acks import acknowledged
from watcher.incidents.model import RAISED, Incident, State
from watcher.incidents.state import OutboxItem, StateStore
from watcher.routing.groups import Group, all_groups
from watcher.routing.matchers import Matcher, matches_all
from watcher.routing.mute import Inhibitor
from watcher.routing.silences import Silences, load_silences

EPILOG = """\
examples:
  watcher incidents                   every incident the state file holds
  watcher incidents --state firing    what is firing now
  watcher incidents --rule prediction-5xx-rate model_version=v3   one rule, one group
  watcher incidents 'severity=~critical|error'                    labels matching these matchers
  watcher incidents --format json     one JSON object per incident
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "incidents",
        help="list incidents with their last notification and its delivery status",
        description="List the incidents of the state file (watcher's own alerts included), each with "
        "its last notification and whether it was delivered, is still being retried or became a dead letter.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(parser)
    parser.add_argument(
        "matchers", nargs="*", metavar="MATCHER", help="only incidents whose labels match, e.g. team=ml"
    )
    parser.add_argument(
        "--state", choices=[state.value for state in State], help="only incidents in this state"
    )
    parser.add_argument("--rule", metavar="NAME", help="only incidents of this rule")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="a table, or one JSON object per line"
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Row:
    """One incident as ``watcher incidents`` shows it."""

    incident: Incident
    notification: OutboxItem | None
    muted: str  # "" or why (silence id, inhibiting incident)
    waiting: datetime | None  # the flush of the group the incident waits in


def run(args: argparse.Namespace) -> int:
    try:
        wanted = [Matcher.parse(text) for text in args.matchers]
    except ValueError as exc:
        print(f"watcher incidents: {exc}", file=sys.stderr)
        return 2
    if args.rule is not None:
        wanted.append(Matcher.equal("rule", args.rule))
    try:
        config = load_config_only(args.config, secrets=False)
    except LoadFailedError as failed:
        return failed.code
    if config.state.url is None and not config.state.path.exists():
        print(
            f"no incidents: no state file at {config.state.path} yet (state.path of {args.config}); "
            "`watcher run` creates it, and `watcher demo` prints where its own is"
        )
        return 0
    try:
        opened = open_state(config, "incidents")
    except LoadFailedError as failed:
        return failed.code
    with opened as state:
        rows = collect(state, config.inhibit, datetime.now(UTC), State(args.state) if args.state else None)
        rows = [row for row in rows if matches_all(wanted, row.incident.labels)]
        dead = len(state.dead_letters())
    if args.format == "json":
        for row in rows:
            print(json.dumps(record(row)))
        return 0
    print(table(rows) if rows else f"no incidents in {config.state.where}")
    if dead:
        print(f"{dead} dead letter{'s' if dead != 1 else ''}: delivery gave up (status 'dead' above)")
    return 0


def collect(
    state: StateStore, inhibit: Sequence[InhibitRule], now: datetime, only: State | None = None
) -> list[Row]:
    """The rows for every incident (or those in ``only``), firing first."""
    incidents = state.incidents(states=None if only is None else (only,))
    firing = state.incidents(states=RAISED)
    with state.reading() as db:
        silences = Silences(load_silences(db, now), now)
        groups = all_groups(db)
        taken = acks.load(db)
    incidents = [acknowledged(incident, taken, now) for incident in incidents]
    inhibitor = Inhibitor(inhibit, firing)
    waiting = _waiting(groups)
    rows = []
    for incident in incidents:
        muted = ""
        if incident.state is not State.RESOLVED:
            silence = silences.muting(incident.labels)
            source = inhibitor.inhibited_by(incident.labels)
            if silence is not None:
                muted = f"silenced by {silence.id}"
            elif source is not None:
                muted = f"inhibited by {source.get('rule', '?')}"
        key = (incident.fingerprint, incident.started_at)
        rows.append(Row(incident, state.last_notification(incident.fingerprint), muted, waiting.get(key)))
    order = {State.FIRING: 0, State.NODATA: 0, State.ERROR: 0, State.PENDING: 1, State.RESOLVED: 2}
    return sorted(rows, key=lambda row: (order[row.incident.state], row.incident.rule, _since(row.incident)))


def _waiting(groups: Sequence[Group]) -> dict[tuple[str, datetime], datetime]:
    """Episodes whose firing has not been told yet -> their group's next flush."""
    found: dict[tuple[str, datetime], datetime] = {}
    for group in groups:
        for member in group.members:
            if member.state is State.FIRING and not member.notified:
                found.setdefault(member.episode, group.next_flush_at)
    return found


def status(row: Row) -> str:
    """What happened to the incident's last notification, in a few words."""
    item = row.notification
    if item is None or _older_episode(row):
        if row.incident.state is State.PENDING:
            return "-"
        if row.muted:
            return f"not sent: {row.muted}"
        if row.waiting is not None:
            return f"waiting for its group (flush {_time(row.waiting)})"
        return "-"
    told = f"{item.notification.event.value} to {item.notification.receiver}"
    if item.status == "delivered" and item.delivered_at is not None:
        return f"{told}: delivered {_time(item.delivered_at)}"
    if item.status == "dead":
        return f"{told}: dead after {item.attempts} attempts: {item.last_error}"
    if item.attempts == 0:
        return f"{told}: pending"
    retry = _time(item.next_attempt_at)
    return f"{told}: pending, attempt {item.attempts} failed ({item.last_error}), next {retry}"


def _older_episode(row: Row) -> bool:
    """The last notification is about an earlier episode of this incident."""
    assert row.notification is not None
    mine = [i for i in row.notification.notification.incidents if i.fingerprint == row.incident.fingerprint]
    return bool(mine) and mine[0].started_at != row.incident.started_at


def table(rows: Sequence[Row]) -> str:
    if not rows:
        return "no incidents"
    header = ("STATE", "RULE", "GROUP", "SINCE", "VALUE", "LAST NOTIFICATION")
    # Values from logs (group labels, errors, notes) are shown escaped, never obeyed by the terminal.
    cells: list[tuple[str, ...]] = [
        tuple(
            escape_line(cell)
            for cell in (
                row.incident.state.value
                + (" (flapping)" if row.incident.flapping else "")
                + (" (acked)" if row.incident.ack else "")
                + (" (muted)" if row.muted else ""),
                row.incident.rule,
                _labels(row.incident.group) or "-",
                _time(_since(row.incident)),
                "-" if row.incident.value is None else f"{row.incident.value:.4g}",
                status(row) + (f" [{row.incident.note}]" if row.incident.note else "") + _ack(row.incident),
            )
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)), line[-1]])
        for line in [header, *cells]
    )


def record(row: Row) -> dict[str, Any]:
    incident = row.incident
    data: dict[str, Any] = {
        "fingerprint": incident.fingerprint,
        "rule": incident.rule,
        "state": incident.state.value,
        "flapping": incident.flapping,
        "group": dict(incident.group),
        "severity": incident.severity,
        "value": incident.value,
        "started_at": incident.started_at.isoformat(),
        "fired_at": None if incident.fired_at is None else incident.fired_at.isoformat(),
        "resolved_at": None if incident.resolved_at is None else incident.resolved_at.isoformat(),
        "note": incident.note,
        "muted": row.muted,
        "ack": None if incident.ack is None else dict(incident.ack),
        "status": status(row),
        "notification": None,
    }
    item = row.notification
    if item is not None:
        data["notification"] = {
            "id": item.notification.id,
            "event": item.notification.event.value,
            "receiver": item.notification.receiver,
            "status": item.status,
            "attempts": item.attempts,
            "last_error": item.last_error,
            "created_at": item.notification.created_at.isoformat(),
            "delivered_at": None if item.delivered_at is None else item.delivered_at.isoformat(),
        }
    return data


def _ack(incident: Incident) -> str:
    """Who acknowledged the incident, when, until when, and what they said."""
    if incident.ack is None:
        return ""
    at = _time(datetime.fromisoformat(incident.ack["at"]))
    until = incident.ack.get("until")
    ends = f" until {_time(datetime.fromisoformat(until))}" if until else ""
    return f" [acknowledged by {incident.ack['by']} {at}{ends}: {incident.ack['message']}]"


def _since(incident: Incident) -> datetime:
    return incident.resolved_at or incident.fired_at or incident.started_at


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(labels.items()))


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

"""``watcher status``: the replicas sharing the state (``ha:``), the partitions each holds and its rules.

Read-only, safe while the replicas run, from any machine that reaches the state. A replica is
alive while its heartbeat is within ``ha.lease``; a partition whose lease expired (its owner died
or was paused) is taken over at the next heartbeat of a live replica.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.cli.common import LoadFailedError, add_config_argument, columns, load_config_only, open_state
from watcher.config import HaConfig
from watcher.duration import format_duration
from watcher.process.partitions import partition_of, ranges
from watcher.rules.loader import load_rules
from watcher.state import leases
from watcher.state.leases import Lease, ReplicaRow

EPILOG = """\
examples:
  watcher status                  replicas, their partitions and how many rules each evaluates
  watcher status --format json    the same, and every partition with its owner, epoch and rules
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="list the replicas sharing the state, the partitions they hold and their rules",
        description="List the watcher replicas that share the state (ha: in watcher.yaml): each one's "
        "host, pid, last heartbeat, whether it is alive and the rule partitions it holds; then the "
        "partitions no live replica holds.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(parser)
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="a table, or one JSON document"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config_only(args.config, secrets=False)
        if config.ha is None:
            print(f"one daemon: ha is not set in {args.config}, so no replicas share {config.state.where}")
            return 0
        opened = open_state(config, "status")
    except LoadFailedError as failed:
        return failed.code
    rules = [rule.name for rule in load_rules(list(config.rules), config).rules]
    with opened as state, state.reading() as db:
        replicas, table = leases.replicas(db), leases.leases(db)
    report = Status(config.ha, replicas, table, rules, datetime.now(UTC))
    print(
        json.dumps(report.as_json(), indent=2) if args.format == "json" else report.text(config.state.where)
    )
    return 0


class Status:
    """What ``watcher status`` shows, judged at ``now``."""

    def __init__(
        self,
        ha: HaConfig,
        replicas: Sequence[ReplicaRow],
        table: Sequence[Lease],
        rules: Sequence[str],
        now: datetime,
    ) -> None:
        self.ha, self.replicas, self.table, self.now = ha, replicas, table, now
        self.rules: dict[int, list[str]] = {}
        for name in sorted(rules):
            self.rules.setdefault(partition_of(name, ha.partitions), []).append(name)

    def alive(self, replica: ReplicaRow) -> bool:
        return replica.last_seen > self.now - self.ha.lease

    def held(self, lease: Lease) -> bool:
        return lease.owner is not None and lease.expires_at > self.now

    def text(self, where: str) -> str:
        alive = sum(self.alive(replica) for replica in self.replicas)
        lines = [
            f"{alive} of {self.ha.replicas} replicas alive on {where}; {len(self.table)} partitions, "
            f"heartbeat {format_duration(self.ha.heartbeat)}, lease {format_duration(self.ha.lease)}"
        ]
        rows = [("REPLICA", "HOST", "PID", "LAST SEEN", "STATE", "PARTITIONS", "RULES", "HOLDS")]
        for replica in self.replicas:
            mine = [lease.number for lease in self.table if lease.owner == replica.id and self.held(lease)]
            seen = f"{format_duration(max(self.now - replica.last_seen, timedelta(0)))} ago"
            rules = sum(len(self.rules.get(number, [])) for number in mine)
            state = "alive" if self.alive(replica) else "dead"
            rows.append(
                (
                    replica.id,
                    replica.host,
                    str(replica.pid),
                    seen,
                    state,
                    str(len(mine)),
                    str(rules),
                    ranges(mine),
                )
            )
        lines.append(columns(rows) if self.replicas else "no replica has sent a heartbeat yet")
        orphaned = [lease.number for lease in self.table if not self.held(lease)]
        if orphaned:
            waiting = sum(len(self.rules.get(number, [])) for number in orphaned)
            lines.append(
                f"not held: partitions {ranges(orphaned)} "
                f"({waiting} rules wait for the next heartbeat of a live replica)"
            )
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        owners = Counter(lease.owner for lease in self.table if self.held(lease))
        return {
            "replicas_expected": self.ha.replicas,
            "replicas": [
                {
                    "id": replica.id,
                    "host": replica.host,
                    "pid": replica.pid,
                    "started_at": replica.started_at.isoformat(),
                    "last_seen": replica.last_seen.isoformat(),
                    "alive": self.alive(replica),
                    "partitions": owners.get(replica.id, 0),
                }
                for replica in self.replicas
            ],
            "partitions": [
                {
                    "number": lease.number,
                    "owner": lease.owner if self.held(lease) else None,
                    "epoch": lease.epoch,
                    "expires_at": lease.expires_at.isoformat() if lease.owner is not None else None,
                    "rules": self.rules.get(lease.number, []),
                }
                for lease in self.table
            ],
        }

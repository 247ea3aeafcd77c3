"""``watcher backtest``: replay rules over log files and print every notification they would send.

The JSON output is a contract other tools read: one object per line,
``{"rule", "group", "event": "firing"|"resolved", "at", "value", "severity"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from watcher.cli.common import LoadFailedError, add_config_argument, load
from watcher.engine import Transition
from watcher.incidents.model import Event
from watcher.replay import Replay, Tick

REPORTED = (Event.FIRING, Event.RESOLVED)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="replay rules over JSON-lines logs and print the notifications they would send",
        description="Replay the rules tick by tick over log files with the same code as `watcher run` "
        "(store, detectors, state machine), on a simulated clock. The files are loaded into a fresh "
        "embedded store for each source the rules use, with that source's time field from the config.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--rules",
        type=Path,
        action="append",
        metavar="PATH",
        help="rule files or folders (repeatable; default: the config's `rules`)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        action="append",
        required=True,
        metavar="FILE.jsonl",
        help="JSON-lines log file (repeatable)",
    )
    parser.add_argument(
        "--start",
        required=True,
        type=parse_time,
        metavar="ISO8601",
        help="first evaluation time, e.g. 2026-01-05T08:00:00Z",
    )
    parser.add_argument(
        "--end", required=True, type=parse_time, metavar="ISO8601", help="last evaluation time"
    )
    parser.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json: one object per line (default); text: a readable table",
    )
    parser.set_defaults(func=run)


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-01-05T08:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    if args.end < args.start:
        print("watcher backtest: --end is before --start", file=sys.stderr)
        return 2
    missing = [str(path) for path in args.logs if not path.is_file()]
    if missing:
        print(f"watcher backtest: log file not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        loaded = load(args.config, args.rules)
    except LoadFailedError:
        return 1
    if not loaded.rules:
        print("watcher backtest: no rules to evaluate", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="watcher-backtest-") as workdir:
        replay = Replay(loaded.config, loaded.rules, args.logs, Path(workdir))
        try:
            transitions = _collect(replay, args.start, args.end)
        finally:
            replay.close()
    if args.format == "json":
        for transition in transitions:
            print(json.dumps(record(transition)))
    else:
        print_table(transitions, sys.stdout)
    return 0


def _collect(replay: Replay, start: datetime, end: datetime) -> list[Transition]:
    progress = Progress(replay.tick_count(start, end), sys.stderr)
    found: list[Transition] = []
    for tick in replay.ticks(start, end):
        found += [t for t in tick.report.transitions if t.event in REPORTED]
        progress.advance(tick)
    progress.done()
    return found


def record(transition: Transition) -> dict[str, Any]:
    incident = transition.incident
    return {
        "rule": incident.rule,
        "group": dict(incident.group),
        "event": transition.event.value,
        "at": transition.at.isoformat().replace("+00:00", "Z"),
        "value": incident.value,
        "severity": incident.severity,
    }


def print_table(transitions: list[Transition], out: TextIO) -> None:
    rows = [record(t) for t in transitions]
    header = ("at", "event", "rule", "group", "value", "severity")
    cells = [
        (
            r["at"],
            r["event"],
            r["rule"],
            ",".join(f"{k}={v}" for k, v in r["group"].items()) or "-",
            "-" if r["value"] is None else f"{r['value']:.4g}",
            r["severity"],
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), file=out)
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)), file=out)
    print(f"{len(rows)} notifications", file=out)


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.done_count = max(total, 1), stream, 0
        self.enabled = stream.isatty()

    def advance(self, tick: Tick) -> None:
        self.done_count += 1
        if self.enabled and (self.done_count % 10 == 0 or self.done_count == self.total):
            share = self.done_count / self.total
            bar = "#" * int(share * 30)
            self.stream.write(f"\r[{bar:<30}] {share:4.0%} {tick.now:%Y-%m-%d %H:%M}")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")

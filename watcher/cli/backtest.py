"""``watcher backtest``: replay rules over log files, or over a configured source as it is, and
print every notification they would send.

The JSON output is a contract other tools read: one object per line, in time order,
``{"rule", "group", "event": "firing"|"resolved"|"update", "at", "value", "severity"}`` for
notifications and ``{"rule", "group", "event": "nodata", "at", "state": "entered"|"left",
"reason"}`` when a rule's group enters or leaves not-enough-data. Then a per-rule summary
(evaluations, not enough data, errors, fires): on stdout after the text table, on stderr with JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import duckdb

from watcher.cli.backtest_summary import Summary
from watcher.cli.common import LoadFailedError, add_config_argument, columns, load, parse_time
from watcher.cli.progress import Progress
from watcher.config import Config, EmbeddedSource
from watcher.incidents.model import Event
from watcher.query import Count, Query, Window
from watcher.replay import Replay
from watcher.replay_workers import MAX_PROCESSES, processes
from watcher.rules.models import Rule
from watcher.store.base import StoreError
from watcher.store.rejections import no_usable_lines, summary
from watcher.tick_report import Transition

REPORTED = (Event.FIRING, Event.RESOLVED)
"""Events printed, and an UPDATE that changes the incident's severity (``severity_from``)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help="replay rules over logs (files or a live source) and print the notifications they would send",
        description="Replay the rules tick by tick with the same code as `watcher run` (store, "
        "detectors, state machine), on a simulated clock. With --logs the files are loaded into a "
        "fresh embedded store for each source the rules use, with that source's time field and "
        "time_format; with --source the configured source is queried as it is. Skipped log lines "
        "are summarised on stderr; no usable line at all is an error (exit 2).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--rules",
        type=Path,
        action="append",
        metavar="PATH",
        help="rule files or folders (repeatable; default: the config's `rules`)",
    )
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument(
        "--logs",
        type=Path,
        action="append",
        metavar="FILE.jsonl",
        help="JSON-lines log file (repeatable), loaded into a fresh embedded store per source",
    )
    origin.add_argument(
        "--source",
        metavar="NAME",
        help="query the configured source NAME itself (Elasticsearch, OpenSearch or the embedded "
        "store, read as it is) with the rules that use it",
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
        "--processes",
        type=_processes,
        default=processes(),
        metavar="N",
        help="replay the rules of --logs shared among N processes, same output (default: the cores "
        f"available, at most {MAX_PROCESSES}: {processes()} here)",
    )
    parser.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json: one object per line (default); text: a readable table, with a progress bar on "
        "stderr when it is a terminal",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.end < args.start:
        return _fail("--end is before --start")
    missing = [str(path) for path in args.logs or () if not path.is_file()]
    if missing:
        return _fail(f"log file not found: {', '.join(missing)}")
    try:
        loaded = load(args.config, args.rules)
    except LoadFailedError as failed:
        return failed.code
    rules = loaded.rules
    if args.source is not None:
        if args.source not in loaded.config.sources:
            known = ", ".join(sorted(loaded.config.sources)) or "none"
            return _fail(f"unknown source {args.source!r} (defined: {known})")
        rules = [rule for rule in rules if rule.source == args.source]
    if not rules:
        on = f" on source {args.source!r}" if args.source is not None else ""
        print(f"watcher backtest: no rules to evaluate{on}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="watcher-backtest-") as workdir:
        try:
            replay = _replay(loaded.config, rules, args, Path(workdir))
        except (StoreError, duckdb.Error, OSError) as exc:
            return _fail(f"cannot open source {args.source!r}: {exc}")
        try:
            problem = _no_data(replay, loaded.config, args)
            found = _collect(replay, args) if problem is None else None
        finally:
            replay.close()
    if problem is not None or found is None:
        return _fail(str(problem))
    _print(*found, args.format)
    return 0


def _replay(config: Config, rules: list[Rule], args: argparse.Namespace, workdir: Path) -> Replay:
    if args.source is None:
        return Replay(config, rules, args.logs, workdir, processes=args.processes)
    from watcher.store.factory import open_store  # the source's backend only

    source = config.sources[args.source]
    if isinstance(source, EmbeddedSource) and not source.path.is_file():
        raise FileNotFoundError(f"no embedded store at {source.path} (nothing was ingested into it)")
    store = open_store(source)
    return Replay(config, rules, (), workdir, stores={args.source: store})


def _no_data(replay: Replay, config: Config, args: argparse.Namespace) -> str | None:
    """Why the backtest cannot be run on data: no usable log line of a source, or a live source
    without documents in the range. Skipped lines are summarised on stderr."""
    if args.source is not None:
        return live_source_empty(replay, args.source, config.sources[args.source].time_field, args)
    files = ", ".join(str(path) for path in args.logs)
    for name, report in replay.ingested.items():
        time_field = config.sources[name].time_field
        label = f"source {name}: " if len(replay.ingested) > 1 else ""
        if not report.rows_stored:
            return label + no_usable_lines(report, time_field, files)
        if report.skipped_total:
            print(f"watcher backtest: {label}{summary(report, time_field)}", file=sys.stderr)
    return None


def live_source_empty(replay: Replay, name: str, time_field: str, args: argparse.Namespace) -> str | None:
    """Whether source ``name`` holds documents from the first window's start to ``--end``."""
    reach = max(rule.window + rule.delay for rule in replay.rules)
    window = Window(args.start - reach, args.end)
    try:
        (result,) = replay.stores[name].evaluate([Query("backtest-data", window, {"n": Count()})])
    except StoreError as exc:
        return f"source {name!r}: {exc}"
    if result.error is not None:
        return f"source {name!r}: {result.error}"
    count = result.groups[0].values.get("n") if result.groups else 0
    if count:
        return None
    span = f"{_iso(window.start)} to {_iso(window.end)}"
    return f"source {name!r} has no documents from {span} (time field {time_field!r})"


def _collect(replay: Replay, args: argparse.Namespace) -> tuple[list[dict[str, Any]], Summary]:
    """Every tick's notifications and not-enough-data changes as records, in time order, and the
    per-rule totals."""
    total = replay.tick_count(args.start, args.end)
    progress = Progress(total, sys.stderr, enabled=args.format != "json")
    totals = Summary.of([rule.name for rule in replay.rules])
    found: list[dict[str, Any]] = []
    for tick in replay.ticks(args.start, args.end):
        changes = [change.record() for change in totals.add(tick.report)]
        reported = [
            record(t) for t in tick.report.transitions if t.event in REPORTED or t.incident.severity_from
        ]
        found += sorted(changes + reported, key=lambda r: str(r["at"]))  # stable: a "left" first
        progress.advance(tick.now)
    progress.done()
    return found, totals


def _print(records: list[dict[str, Any]], totals: Summary, form: str) -> None:
    if form == "json":
        for line in records:
            print(json.dumps(line))
        totals.print(sys.stderr)
    else:
        print_table([r for r in records if r["event"] != "nodata"], sys.stdout)
        totals.print(sys.stdout)


def _processes(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, at least 1, got {text!r}")
    return int(text)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _fail(message: str) -> int:
    print(f"watcher backtest: {message}", file=sys.stderr)
    return 2


def record(transition: Transition) -> dict[str, Any]:
    incident = transition.incident
    return {
        "rule": incident.rule,
        "group": dict(incident.group),
        "event": transition.event.value,
        "at": _iso(transition.at),
        "value": incident.value,
        "severity": incident.severity,
    }


def print_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    """The notifications (``record``s) as a table, and how many."""
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
    print(columns([header, *cells]), file=out)
    print(f"{len(rows)} notifications", file=out)

"""``watcher demo``: synthetic ML-API traffic with injected incidents, replayed through the real
pipeline (embedded store, detectors, state machine, outbox, the configured receivers)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

from watcher.cli.common import LoadFailedError, add_config_argument, load
from watcher.demo import DEMO_LENGTH, DEMO_START, SCENARIO, Outcome, score, write_log
from watcher.incidents.model import Event
from watcher.notify.outbox import Outbox
from watcher.notify.registry import build_notifier
from watcher.replay import Replay, Tick
from watcher.templates import Templates


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="replay synthetic ML-API traffic with injected incidents through the shipped rules",
        description="Generate a realistic prediction-API log (7 hours, ~125k requests) with injected "
        "incidents (5xx burst, 429 storm, p99 latency spike, traffic drop, feature drift, unseen "
        "category, missing feature), replay the rules over it on a simulated clock and show each "
        "notification as the configured receivers deliver it (the console by default).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("data/demo"),
        help="where the log and the demo's databases go (default: data/demo)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the synthetic traffic")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config)
    except LoadFailedError as failed:
        return failed.code
    log_path = args.workdir / "requests.jsonl"
    print(f"Generating {DEMO_LENGTH} of prediction-API traffic from {DEMO_START:%Y-%m-%d %H:%M} UTC ...")
    documents = write_log(log_path, seed=args.seed)
    print(f"  {documents:,} requests written to {log_path}")
    print("Injected incidents:")
    for injection in SCENARIO:
        begin = DEMO_START + injection.start
        print(f"  {begin:%H:%M}-{begin + injection.length:%H:%M}  {injection.description}")
    print(f"Replaying {len(loaded.rules)} rules minute by minute; notifications follow.\n")
    workdir = args.workdir / "replay"
    shutil.rmtree(workdir, ignore_errors=True)
    replay = Replay(loaded.config, loaded.rules, [log_path], workdir, evidence=True)
    clock = _SimulatedClock(DEMO_START)
    templates = Templates(loaded.config.templates, loaded.rules, loaded.config.sources)
    notifiers = {n: build_notifier(n, r, templates) for n, r in loaded.config.receivers.items()}
    outbox = Outbox(replay.state, notifiers, clock=clock)
    events: list[tuple[str, str, datetime]] = []

    def deliver(tick: Tick) -> None:
        clock.now = tick.now
        if tick.report.notifications:
            print(f"-- {tick.now:%Y-%m-%d %H:%M} UTC " + "-" * 40, flush=True)
        outbox.drain()
        events.extend(
            (t.incident.rule, t.event.value, t.at)
            for t in tick.report.transitions
            if t.event in (Event.FIRING, Event.RESOLVED)
        )

    try:
        for _ in replay.ticks(DEMO_START, DEMO_START + DEMO_LENGTH, after_tick=deliver):
            pass
    finally:
        replay.close()
    outcomes, stray = score(events, {rule.name for rule in loaded.rules})
    _summary(outcomes, stray)
    _where_the_state_is(workdir, list(loaded.config.sources))
    return 0 if all(o.caught for o in outcomes) and not stray else 1


class _SimulatedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _summary(outcomes: list[Outcome], stray: list[tuple[str, str, datetime]]) -> None:
    print("\nSummary: injected incident -> rule: fired, resolved")
    for outcome in outcomes:
        mark = "ok  " if outcome.caught else "MISS"
        fired = f"{outcome.fired_at:%H:%M}" if outcome.fired_at else "-"
        resolved = f"{outcome.resolved_at:%H:%M}" if outcome.resolved_at else "-"
        print(
            f"  [{mark}] {outcome.injection.kind:<15} -> {outcome.rule:<30} "
            f"fired {fired:>5}, resolved {resolved:>5}"
        )
    if stray:
        print(f"  {len(stray)} notifications outside injected incidents:", file=sys.stderr)
        for rule, event, at in stray:
            print(f"    {at:%H:%M} {rule} {event}", file=sys.stderr)
    else:
        print("  no notifications during quiet periods")


def _where_the_state_is(workdir: Path, sources: list[str]) -> None:
    """Write a config naming the demo's state file and say how to look at it: the demo keeps its
    incidents apart from ./watcher.yaml's state, where `watcher incidents` looks by default."""
    config = workdir / "watcher.yaml"
    embedded = {name: {"store": "embedded", "path": f"{name}.duckdb"} for name in sources}
    config.write_text(
        "# Written by `watcher demo`: its state file, for `watcher incidents --config` this file.\n"
        f"sources: {json.dumps(embedded)}\nstate: {{path: state.sqlite}}\nrules: []\n"
    )
    print(f"\nThe demo's incidents and notifications are in {workdir / 'state.sqlite'}; to look at them:")
    print(f"  watcher incidents --config {config}")

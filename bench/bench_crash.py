"""Crash bench: a real `watcher run` fed an incident storm, SIGKILLed many times, two storms.

1. ``webhook``: kills at random moments, one webhook receiver (``tests/e2e/storm.py``).
2. ``slack``: Slack with charts plus a webhook, each kill aimed at one step of a Slack send (before
   the post, after Slack posted it, after its answer, mid-upload, after the chart was shared,
   between a RESOLVED's rewrite and its reply), one in four at a random moment
   (``tests/e2e/slack_storm.py``).

Prints, per channel, lost and duplicated notifications, the other correctness checks and the
time taken. Same harnesses as ``tests/e2e/test_crash.py``, with more kills:

    .venv/bin/python bench/bench_crash.py --kills 200 --storm slack
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.slack_storm import slack_storm
from tests.e2e.storm import CrashResult, crash_loop
from tests.e2e.webhook_server import RecordingProcess
from tests.notify.slack_server import SlackServer


def webhook_storm(args: argparse.Namespace) -> bool:
    with (
        tempfile.TemporaryDirectory(prefix="watcher-crash-") as workdir,
        RecordingProcess(Path(workdir) / "deliveries.jsonl") as webhook,
    ):
        result = crash_loop(
            Path(workdir) / "run",
            webhook,
            services=args.services,
            length=args.length,
            min_kills=args.kills,
            max_life=args.max_life,
            seed=args.seed,
        )
    print(f"[webhook storm, random kills] {result.summary()}")
    _details(result)
    return _ok(result)


def aimed_slack_storm(args: argparse.Namespace) -> bool:
    with (
        tempfile.TemporaryDirectory(prefix="watcher-crash-") as workdir,
        RecordingProcess(Path(workdir) / "deliveries.jsonl") as webhook,
        SlackServer() as slack,
    ):
        result = slack_storm(
            Path(workdir) / "run",
            slack,
            webhook,
            services=args.services,
            length=args.length,
            min_kills=args.kills,
            seed=args.seed,
        )
    crash = result.crash
    print(f"[slack storm, aimed kills] {result.summary()}")
    print(
        f"  per channel: slack lost {len(result.lost)}, duplicated {result.duplicate_posts} of "
        f"{result.posts} posts ({result.duplicate_posts / max(result.posts, 1):.2%}) and "
        f"{result.duplicate_charts} of {result.charts} charts; webhook lost {len(crash.lost)}, duplicated "
        f"{crash.duplicates} of {crash.notifications} ({crash.duplicate_rate:.2%})"
    )
    _details(crash)
    slack_ok = not (result.duplicate_posts or result.duplicate_charts or result.lost or result.unresolved)
    return slack_ok and not result.out_of_order and result.dead == 0 and _ok(crash)


def _details(result: CrashResult) -> None:
    for name in ("lost", "unexpected", "unresolved", "out_of_order", "told_twice"):
        found = getattr(result, name)
        if found:
            print(f"  {name}: {found[:10]}{' ...' if len(found) > 10 else ''}")


def _ok(result: CrashResult) -> bool:
    wrong = result.lost or result.unexpected or result.unresolved or result.out_of_order or result.told_twice
    return not wrong and result.integrity == "ok" and result.duplicate_rate <= 0.005


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storm", choices=["webhook", "slack", "both"], default="both")
    parser.add_argument("--kills", type=int, default=200, help="at least this many SIGKILLs (default 200)")
    parser.add_argument("--length", type=float, default=240, help="seconds of incident storm (default 240)")
    parser.add_argument("--services", type=int, default=30, help="services in the storm (default 30)")
    parser.add_argument("--max-life", type=float, default=1.5, help="a daemon lives 0..this many seconds")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    started, ok = time.monotonic(), True
    if args.storm in ("webhook", "both"):
        ok = webhook_storm(args) and ok
    if args.storm in ("slack", "both"):
        ok = aimed_slack_storm(args) and ok
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{time.monotonic() - started:.0f}s wall; peak RSS of one daemon {peak:.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

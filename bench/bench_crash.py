"""Crash bench: a real `watcher run` fed an incident storm, SIGKILLed at random points many times.

Prints how many bad stretches were never notified (lost), duplicate deliveries (a notification
received again after a kill), the other correctness checks and the time taken. Same harness as
``tests/e2e/test_crash.py``, with more kills:

    .venv/bin/python bench/bench_crash.py --kills 200 --length 240
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.storm import crash_loop
from tests.e2e.webhook_server import RecordingProcess


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=200, help="at least this many SIGKILLs (default 200)")
    parser.add_argument("--length", type=float, default=240, help="seconds of incident storm (default 240)")
    parser.add_argument("--services", type=int, default=60, help="services in the storm (default 60)")
    parser.add_argument("--max-life", type=float, default=1.5, help="a daemon lives 0..this many seconds")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
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
    print(result.summary())
    for name in ("lost", "unexpected", "unresolved", "out_of_order", "told_twice"):
        found = getattr(result, name)
        if found:
            print(f"{name}: {found[:10]}{' ...' if len(found) > 10 else ''}")
    ok = not (
        result.lost or result.unexpected or result.unresolved or result.out_of_order or result.told_twice
    )
    return 0 if ok and result.integrity == "ok" and result.duplicate_rate < 0.005 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Crash bench for replicas: three `watcher run` on one PostgreSQL state during an incident storm,
one of them SIGKILLed at random ``--kills`` times (restarted each time), as the issue asks (>= 50).

Runs ``tests/e2e/test_replicas_delivery.py`` (osmem-server source, fake Slack and a webhook, real
PostgreSQL) with ``WATCHER_HA_KILLS`` and prints its figures: lost notifications, Slack duplicates,
the webhook's duplicate rate (target <= 0.5 %), resolved replies outside their thread, and the
time taken. The test's assertions hold too (0 lost, 0 Slack duplicates, every reply threaded).
How soon a killed replica's rules are evaluated again is measured by tests/e2e/test_replicas.py
(at most two ticks after the kill).

    .venv/bin/python bench/bench_replicas_crash.py --kills 50
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/e2e/test_replicas_delivery.py"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50)
    args = parser.parse_args()
    env = {**os.environ, "WATCHER_HA_KILLS": str(args.kills), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    figures = re.findall(r"^replicas-crash: .*$", run.stdout, re.MULTILINE)
    print(*(figures or ["replicas-crash: no figures (the run failed before its checks)"]), sep="\n")
    print(f"took {took:.0f} s; test {'passed' if run.returncode == 0 else 'FAILED'}")
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-2000:], sep="\n")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())

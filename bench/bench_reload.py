"""Cost of hot reload with many rule files: the stat poll, and a reload after one edit.

    .venv/bin/python bench/bench_reload.py [--rules 1000] [--polls 50]

The poll (``FileWatch.changed``) runs every ``reload.interval`` (2s by default) whatever happens;
a reload (load every file + ``merge``) only runs after an edit, followed by the check of the rules'
annotations and template overrides (``rule_errors``, also run at start). Prints the time of each,
the share of one core the poll costs at the default interval, and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_daemon_memory import rule  # noqa: E402

from watcher.config import Config, EmbeddedSource  # noqa: E402
from watcher.rules.loader import load_rules  # noqa: E402
from watcher.rules.reload import merge  # noqa: E402
from watcher.rules.watch import FileWatch  # noqa: E402
from watcher.template_errors import rule_errors  # noqa: E402
from watcher.templates import Templates  # noqa: E402

DEFAULT_INTERVAL = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "rules")
        folder.mkdir()
        for index in range(args.rules):
            (folder / f"rule-{index:04d}.yaml").write_text(yaml.safe_dump(rule(index, "1m")))
        config = Config(sources={"app": EmbeddedSource(store="embedded")}, rules=[folder])

        watch = FileWatch([folder])
        started = time.perf_counter()
        for _ in range(args.polls):
            assert not watch.changed()
        poll = (time.perf_counter() - started) / args.polls

        started = time.perf_counter()
        first = load_rules([folder], config)
        load = time.perf_counter() - started
        running = {r.name: r for r in first.rules}

        edited = folder / "rule-0000.yaml"
        edited.write_text(yaml.safe_dump({**rule(0, "1m"), "window": "20m"}))
        seen = [watch.changed(), watch.changed()]  # the second look: settled
        started = time.perf_counter()
        changes = merge(running, first.files, load_rules([folder], config))
        reload = time.perf_counter() - started

        templates = Templates(config.templates, changes.rules, config.sources)
        started, cpu = time.perf_counter(), time.process_time()
        assert not rule_errors(templates, changes.rules, changes.files)
        checked = time.perf_counter() - started, time.process_time() - cpu

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rule files                 {args.rules}")
    print(
        f"poll (stat every file)     {poll * 1000:.1f} ms  -> {poll / DEFAULT_INTERVAL:.2%} of a core at 2s"
    )
    print(f"edit seen on looks         {seen} (reported once settled)")
    print(f"initial load               {load:.2f} s")
    print(f"reload after one edit      {reload:.2f} s  ({changes.summary()})")
    print(f"template check             {checked[0]:.2f} s  ({checked[1]:.2f} s CPU)")
    print(f"peak RSS                   {peak:.0f} MB")


if __name__ == "__main__":
    main()

"""The loader under a mutation fuzzer for minutes: what the suite's fuzz test does for seconds.

    .venv/bin/python bench/bench_fuzz_rules.py [--seconds 120] [--seed 12] [--save crashes/]
    .venv/bin/python bench/bench_fuzz_rules.py --large 34000

Mutants of the shipped rule files and of watcher.yaml (``tests/rules/mutants.py``), alternately,
each loaded as ``watcher check`` loads it. A crash is any exception but the loader's own answer
(a ``ConfigError`` for watcher.yaml; nothing at all for rule files, whose mistakes are listed).
Prints the inputs tried, the crashes (must be 0), and the worst time and Python allocation peak
(tracemalloc) of one input; ``--save`` keeps each crashing input. ``--large N`` instead times one
file of N rules (``rules:`` with the shipped threshold rules, renamed) and its peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rules.mutants import CONFIG_SEEDS, RULE_SEEDS, Cost, measured, mutate, random_edits, workdir  # noqa: E402
from watcher.rules.loader import ConfigError, load_config, load_rules  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--save", type=Path, help="write each crashing input into this folder")
    parser.add_argument("--large", type=int, help="time one rule file of this many rules instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.large:
            large(Path(tmp), args.large)
        else:
            fuzz(workdir(Path(tmp)), args.seconds, random.Random(args.seed), args.save)


def fuzz(folder: Path, seconds: float, rng: random.Random, save: Path | None) -> None:
    tried = crashes = 0
    worst_time = worst_peak = Cost(0.0, 0)
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        is_config = tried % 2 == 1
        seed = rng.choice(CONFIG_SEEDS if is_config else RULE_SEEDS)
        text = mutate(seed.read_text(), random_edits(rng, rng.randint(1, 6)))
        path = folder / ("watcher.yaml" if is_config else "mutant.yaml")
        path.write_text(text, encoding="utf-8")
        tried += 1
        try:
            cost = measured(lambda: _load(path, is_config))  # noqa: B023 -- called at once
        except Exception:
            crashes += 1
            print(f"crash on a mutant of {seed.name}:\n{traceback.format_exc()}", file=sys.stderr)
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                (save / f"crash-{crashes}-{seed.name}").write_text(text, encoding="utf-8")
            continue
        worst_time = max(worst_time, cost, key=lambda c: c.seconds)
        worst_peak = max(worst_peak, cost, key=lambda c: c.peak_bytes)
    print(f"inputs tried:  {tried:,} in {seconds:g} s (rule files and watcher.yaml, alternately)")
    print(f"crashes:       {crashes}")
    print(f"worst time:    {worst_time.seconds * 1000:.1f} ms (peak {worst_time.peak_bytes / 2**20:.1f} MiB)")
    print(f"worst memory:  {worst_peak.peak_bytes / 2**20:.1f} MiB (in {worst_peak.seconds * 1000:.1f} ms)")
    print(f"peak RSS:      {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def _load(path: Path, is_config: bool) -> None:
    if not is_config:
        load_rules([path])
        return
    with contextlib.suppress(ConfigError):  # the loader's own answer
        load_config(path, environ={})


def large(folder: Path, count: int) -> None:
    shipped = [yaml.safe_load(seed.read_text()) for seed in RULE_SEEDS if "feature" not in seed.name]
    lines = ["rules:"]
    for index in range(count):
        rule = {
            k: v for k, v in shipped[index % len(shipped)].items() if k not in ("annotations", "description")
        }
        rule["name"] = f"{rule['name']}-{index}"
        first, *rest = yaml.safe_dump(rule, sort_keys=False, width=200).splitlines()
        lines += ["  - " + first, *("    " + line for line in rest)]
    path = folder / "large.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    ruleset = load_rules([path])
    seconds = time.perf_counter() - started
    size = path.stat().st_size / 2**20
    print(f"{len(ruleset.rules):,} rules ({len(ruleset.errors)} errors), {size:.1f} MiB: {seconds:.2f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

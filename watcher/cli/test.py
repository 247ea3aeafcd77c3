"""``watcher test rules``: unit tests for rules, like promtool's ``test rules``.

Each test file names a config and rules, gives input logs (lines, files, or series of events
per minute) and the incidents (and notifications) expected at given times. The rules run through
the same replay as ``watcher backtest``. Exit 0 when every test passes, 1 when one fails (with a
diff), 2 when a test file is invalid (``file:line:col: message``). Format: docs/rule-tests.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.rule_tests.reading import RuleTestFileError, read_suite
from watcher.rule_tests.report import failure
from watcher.rule_tests.run import run_test

EPILOG = """\
examples:
  watcher test rules tests/rules-examples/*.yaml
  watcher test rules my-rule-tests/ --run flatline       only tests whose name contains 'flatline'
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run unit tests of rules (watcher test rules FILE...)",
        description="Unit tests for watcher's own inputs.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    rules = kinds.add_parser(
        "rules",
        help="replay test logs through rules and compare the incidents with the expected ones",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rules.add_argument(
        "files", nargs="+", type=Path, metavar="TESTFILE", help="rule test files, or folders of them (*.yaml)"
    )
    rules.add_argument("--run", metavar="TEXT", help="run only the tests whose name contains TEXT")
    rules.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = suite_files(args.files)
    bad = failed = passed = 0
    for path in files:
        try:
            suite = read_suite(path)
        except RuleTestFileError as exc:
            print(exc, file=sys.stderr)
            bad += 1
            continue
        for index, test in enumerate(suite.spec.tests):
            if args.run and args.run not in test.name:
                continue
            outcome = run_test(suite, index)
            if outcome.passed:
                passed += 1
            else:
                failed += 1
                print("\n".join(failure(path, outcome, suite.spec.day)))
    print(summary(len(files), passed, failed, bad))
    return 2 if bad else 1 if failed or not passed else 0


def suite_files(paths: list[Path]) -> list[Path]:
    """The files named, and the *.yaml / *.yml files in folders named, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            found.append(path)
    return found


def summary(files: int, passed: int, failed: int, bad: int) -> str:
    text = f"{passed} passed, {failed} failed"
    if bad:
        text += f", {bad} invalid test file{'s' if bad > 1 else ''}"
    if not passed and not failed and not bad:
        text += " (no tests ran)"
    return f"{text} ({files} file{'' if files == 1 else 's'})"

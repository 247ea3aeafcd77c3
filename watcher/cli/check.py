"""``watcher check``: validate watcher.yaml and the rule files, listing every mistake as path:line:col."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from watcher.cli.common import add_config_argument
from watcher.config import Config
from watcher.rules.loader import ConfigError, LoadError, RuleSet, load_config, load_rules
from watcher.template_errors import template_errors

DESCRIPTION = """\
Validate watcher.yaml and the rule files without running anything.

Every mistake is printed on its own line as path:line:col: message (config errors first,
then rule errors), followed by a one-line summary. The exit code is 0 when everything is
valid and 1 otherwise, so the command fits a pre-commit hook or a CI step.
"""

EPILOG = """\
examples:
  watcher check                          the config in ./watcher.yaml and the rules it names
  watcher check rules/new-rule.yaml      one rule file, with the sources of ./watcher.yaml
  watcher check -c deploy/watcher.yaml   another config
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate watcher.yaml and the rule files",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(parser)
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="rule files or folders to check (default: the 'rules' entries of the config)",
    )
    parser.add_argument(
        "--online",
        action="store_true",
        help="also ask each Elasticsearch/OpenSearch source whether the rules' index pattern exists and "
        "their fields are mapped with usable types",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config_path: Path = args.config
    if not config_path.is_file() and not args.paths:
        print(f"watcher check: config file {config_path} not found (use --config FILE)", file=sys.stderr)
        return 2
    config: Config | None = None
    config_errors: list[LoadError] = []
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        config_errors = exc.errors
    paths: list[Path] = list(args.paths) or (list(config.rules) if config is not None else [])
    # Without a valid config the named rule files are still checked, all but their sources.
    ruleset = load_rules(paths, config) if paths else RuleSet()
    # Templates (files, annotations, overrides) are checked once the config is valid; they count
    # as config errors in the summary.
    if config is not None:
        config_errors += template_errors(config, config_path, ruleset)
    for error in [*config_errors, *ruleset.errors]:
        print(error)
    print(summary(config_path, config_errors, ruleset))
    wants_online = getattr(args, "online", False) and config is not None
    online = _online_problems(config, ruleset) if wants_online and config is not None else []
    for problem in online:
        print(problem)
    if wants_online:
        print(f"online: {len(online)} problems" if online else "online: every rule's fields are mapped")
    return 1 if config_errors or ruleset.errors or online else 0


def _online_problems(config: Config, ruleset: RuleSet) -> list[str]:
    from watcher.store.mapping_check import check_online

    return [str(p) for p in check_online(ruleset.rules, config.sources, datetime.now(UTC))]


def summary(config_path: Path, config_errors: list[LoadError], ruleset: RuleSet) -> str:
    """``OK: 5 rules in 3 files``, or ``2 errors in 1 of 4 files; 5 rules valid`` (config counted)."""
    rules = _count(len(ruleset.rules), "rule")
    errors = [*config_errors, *ruleset.errors]
    if not errors:
        return f"OK: {rules} in {_count(len(ruleset.scanned), 'file')}"
    files = {config_path, *ruleset.scanned, *(error.path for error in errors)}
    bad = {error.path for error in errors}
    return f"{_count(len(errors), 'error')} in {len(bad)} of {_count(len(files), 'file')}; {rules} valid"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

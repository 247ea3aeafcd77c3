"""The ``watcher`` command. Each subcommand is one module; ``COMMANDS`` is the registry.

A command module exposes ``add_parser(subparsers)`` (which registers its parser and sets
``func``) and ``run(args) -> int`` (the exit code). This file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from watcher import __version__

COMMANDS = (
    "run",
    "check",
    "backtest",
    "demo",
    "ingest",
    "baseline",
    "schema",
    "render",
    "incidents",
    "silence",
    "routes",
)

EPILOG = """\
Typical use:
  watcher check                     validate watcher.yaml and the rule files
  watcher run --config watcher.yaml run the daemon
  watcher demo                      replay synthetic traffic with injected incidents
  watcher backtest --logs app.jsonl --start 2026-01-05T08:00Z --end 2026-01-05T15:00Z
Each command has its own --help.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watcher",
        description="watcher watches request logs in Elasticsearch, OpenSearch or an embedded store, "
        "evaluates YAML rules on a schedule and notifies people when something is wrong.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"watcher.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"watcher.cli.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())

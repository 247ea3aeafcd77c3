"""The ``watcher`` command. Each subcommand is one module; ``COMMANDS`` is the registry.

A command module exposes ``add_parser(subparsers)`` (which registers its parser and sets
``func``) and ``run(args) -> int`` (the exit code). This file only wires them together.

A command line that names a command imports that command's module only: ``watcher run`` never
loads what ``render`` or ``demo`` need (NumPy, slack_sdk, requests: about 16 MB of the daemon's
RSS). ``watcher --help`` and an unknown command still see every command.
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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``watcher`` parser with every command, or with ``command`` alone when it is one."""
    parser = argparse.ArgumentParser(
        prog="watcher",
        description="watcher watches request logs in Elasticsearch, OpenSearch or an embedded store, "
        "evaluates YAML rules on a schedule and notifies people when something is wrong.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (command,) if command in COMMANDS else COMMANDS:
        importlib.import_module(f"watcher.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
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

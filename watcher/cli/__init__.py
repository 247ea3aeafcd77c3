"""The ``watcher`` command. Each subcommand is one module; ``COMMANDS`` is the registry.

A command module exposes ``add_parser(subparsers)`` (which registers its parser and sets
``func``) and ``run(args) -> int`` (the exit code). This file only wires them together.

Exit codes (README "Exit codes"): 0 ok; 1 invalid input or findings; 2 a usage or environment
error (argparse, a missing config file, a port in use, a path that cannot be written); 70 an
internal error, reported in one line (``--debug`` prints the traceback); 141 when standard output
is closed early (``watcher incidents | head -1``), quietly, as ``cat`` and ``git`` do.

A command line that names a command imports that command's module only: ``watcher run`` never
loads what ``render`` or ``demo`` need (NumPy, slack_sdk, requests: about 16 MB of the daemon's
RSS). ``watcher --help`` and an unknown command still see every command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

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
    "ack",
    "routes",
    "test",
    "notify",
    "state",
    "status",
    "import",
)

OK, INVALID, ENVIRONMENT, INTERNAL = 0, 1, 2, 70
CLOSED_OUTPUT = 141  # 128 + SIGPIPE: what a shell reports for `cat` killed by a closed pipe
INTERRUPTED = 130  # 128 + SIGINT

EPILOG = """\
Exit codes: 0 ok, 1 invalid input or findings, 2 usage or environment error, 70 internal error.

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
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an internal error (exit code 70)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (command,) if command in COMMANDS else COMMANDS:
        importlib.import_module(f"watcher.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    words, debug = _without_debug(argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return ENVIRONMENT
    return guarded(args.func, args, debug=debug, name=f"watcher {args.command}")


def _without_debug(argv: list[str]) -> tuple[list[str], bool]:
    """The command line without ``--debug``, which is honoured anywhere before a ``--``."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [word for word in argv[:end] if word != "--debug"]
    return head + argv[end:], len(head) < end


def guarded(
    func: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, debug: bool, name: str
) -> int:
    """Run a command: its exit code, or the code of what went wrong around it (never a traceback
    unless ``debug``)."""
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        _silence_stdout()
        return CLOSED_OUTPUT
    except KeyboardInterrupt:
        return INTERRUPTED
    except OSError as exc:  # a path or device the command needed: the environment, not a bug
        if debug:
            traceback.print_exc()
        print(f"{name}: {_os_problem(exc)}", file=sys.stderr)
        return ENVIRONMENT
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(f"{name}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("run with --debug for the traceback", file=sys.stderr)
        return INTERNAL
    return code


def _os_problem(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _silence_stdout() -> None:
    """Point standard output at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests capture it)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

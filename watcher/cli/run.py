"""``watcher run``: the daemon."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from watcher.cli.common import LoadFailedError, add_config_argument, load
from watcher.process import memory
from watcher.process.http import HttpError
from watcher.process.logs import add_log_arguments, register_config_secrets, setup_logging


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the daemon: evaluate rules on schedule and deliver notifications",
        description="Run watcher as a long-running daemon. It evaluates every rule on its `every`, over "
        "the window [now - delay - window, now - delay), keeps incidents in the state database and "
        "delivers notifications through the outbox. SIGTERM/SIGINT stop it cleanly: the in-flight tick "
        "finishes, the outbox is flushed once more and the databases are closed. watcher.yaml and the "
        "rule files are reloaded when they change (see 'reload:' in watcher.yaml) and on SIGHUP: an "
        "invalid edit keeps the last good version running and raises the watcher:rules-invalid alert; "
        "a removed rule's firing incidents are resolved with a note.",
    )
    add_config_argument(parser)
    add_log_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        # invalid rules are reported; the valid ones run. Rebuilt: they live as long as the daemon.
        loaded = memory.rebuilt(lambda: load(args.config, strict=False))
    except LoadFailedError as failed:
        return failed.code
    register_config_secrets(loaded.config)  # never printed, whatever logs them
    from watcher.process.daemon import Daemon

    try:
        daemon = Daemon(loaded.config, loaded.rules, config_path=args.config, files=loaded.files)
    except Exception as exc:  # a start-up failure (state file locked, store) in one line
        print(f"watcher run: cannot start: {exc}", file=sys.stderr)
        return 2
    # Raises the watcher:rules-invalid alert, or resolves one left firing by the previous run
    # when the files were fixed while watcher was stopped.
    daemon.rule_errors_found(loaded.errors + daemon.template_problems(loaded.files))
    if not loaded.errors:  # with load errors a missing rule may only be broken: nothing is retired
        daemon.retire_orphans()
    try:
        daemon.run_forever()
    except HttpError as exc:  # the port is taken, or the address is not this machine's
        daemon.stop(flush_timeout=timedelta(0))
        print(f"watcher run: {exc}", file=sys.stderr)
        return 2
    return 0

"""``watcher state migrate``: copy a SQLite state file into PostgreSQL, nothing lost.

Stop the daemon first: the command takes the file's daemon lock for the copy, so a daemon still
running is named instead of a copy taken under its feet. The target is ``--to`` or, without it,
the config's ``state.url`` (its ``${VAR}`` resolved), and the source ``--from`` or the config's
``state.path``. A target that already holds a state is refused unless ``--force``. The password
of the URL is never printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from watcher.cli.common import add_config_argument, load_config_only, load_failure_exits
from watcher.config import StateConfig
from watcher.incidents.lock import DaemonLock
from watcher.incidents.state import StateStore, StateStoreError
from watcher.state.copy import copy_state
from watcher.state.factory import open_state
from watcher.state.url import scrub

EPILOG = """\
examples:
  watcher state migrate --to postgresql://watcher:${PGPASSWORD}@db:5432/watcher
  watcher state migrate                 from state.path to state.url, both from watcher.yaml
  watcher state migrate --from /var/lib/watcher/state.sqlite --to postgresql://... --force
Then set state.url in watcher.yaml and start watcher: it resumes from the copied checkpoints.
"""
NAMES = {
    "incidents": "incidents",
    "silences": "silences",
    "outbox": "outbox rows",
    "thread_refs": "thread references",
    "dispatch_groups": "groups",
    "checkpoints": "checkpoints",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "state",
        help="move watcher's state (migrate a SQLite file to PostgreSQL)",
        description="Work on watcher's state as a whole.",
    )
    commands = parser.add_subparsers(dest="state_command", metavar="COMMAND", required=True)
    migrate = commands.add_parser(
        "migrate",
        help="copy a SQLite state file into PostgreSQL",
        description="Copy every incident, silence, outbox row, thread reference, group and checkpoint "
        "of a SQLite state file into a PostgreSQL database (stop the daemon first).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(migrate)
    migrate.add_argument(
        "--to", metavar="URL", help="postgresql://user:password@host:5432/db (default: state.url)"
    )
    migrate.add_argument(
        "--from", dest="source", type=Path, metavar="FILE", help="the SQLite file (default: state.path)"
    )
    migrate.add_argument("--force", action="store_true", help="replace a state the target already holds")
    migrate.set_defaults(func=load_failure_exits(run_migrate))


def run_migrate(args: argparse.Namespace) -> int:
    config = load_config_only(args.config, secrets=args.to is None).state
    source: Path = args.source or config.path
    url = args.to or config.url
    if url is None:
        return _fail("no target: give --to postgresql://... or set state.url in the config")
    try:
        target = StateConfig(url=url)
    except ValidationError:
        return _fail(f"--to must be a postgresql://user:password@host:5432/db URL, not {scrub(url, url)!r}")
    if not source.is_file():
        return _fail(f"no state file at {source} (--from, or state.path of {args.config})")
    try:
        with DaemonLock(source), StateStore(source) as old, open_state(target) as new:
            copied = copy_state(old.backend, new.backend, force=args.force)
    except StateStoreError as exc:
        return _fail(str(exc))
    told = ", ".join(f"{copied[table]} {name}" for table, name in NAMES.items())
    print(f"copied {told} from {source} to {target.where}")
    print("set state.url in the config to use it; the daemon resumes from the copied checkpoints")
    return 0


def _fail(message: str) -> int:
    print(f"watcher state migrate: {message}", file=sys.stderr)
    return 2

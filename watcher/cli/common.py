"""What several commands share: the --config option and loading config + rules with clear errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from watcher.config import Config
from watcher.config.environment import secrets_deferred
from watcher.incidents.state import StateStore, StateStoreError
from watcher.rules.loader import ConfigError, load_config, load_rules
from watcher.rules.models import Rule
from watcher.state.factory import open_state as open_state_of

DEFAULT_CONFIG = Path("watcher.yaml")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help="watcher.yaml to use (default: ./watcher.yaml)",
    )


@dataclass(frozen=True)
class Loaded:
    config: Config
    rules: list[Rule]
    errors: list[str] = field(default_factory=list)  # rule errors, when loaded with strict=False
    files: dict[str, Path] = field(default_factory=dict)  # rule name -> the file it came from


class LoadFailedError(Exception):
    """Config or rules could not be loaded; the errors were already printed. ``code`` is the exit
    code: 1 for invalid files, 2 for the environment (a missing config file, a state file that
    cannot be opened)."""

    def __init__(self, code: int = 1) -> None:
        super().__init__(code)
        self.code = code


def load_failure_exits(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command's ``run`` that returns the exit code of a ``LoadFailedError`` instead of raising."""

    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except LoadFailedError as failed:
            return failed.code

    return guarded


def state_without_secrets(args: argparse.Namespace, command: str) -> StateStore:
    """The state file of ``args.config``, loaded without its secrets (the command sends nothing)."""
    return open_state(load_config_only(args.config, secrets=False), command)


def parse_time(text: str) -> datetime:
    """ISO 8601 (an argparse type); a time without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-01-05T08:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_config_only(config_path: Path, *, secrets: bool = True) -> Config:
    """The config alone (commands that work on the state file, not on rules), errors printed.

    Without ``secrets`` (commands that send nothing), a ``${VAR}`` that is not set is no error:
    ``watcher incidents`` runs without the daemon's environment.
    """
    _exists(config_path)
    try:
        with nullcontext() if secrets else secrets_deferred():
            return load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise LoadFailedError from exc


def _exists(config_path: Path) -> None:
    if not config_path.is_file():
        print(f"watcher: config file {config_path} not found (use --config FILE)", file=sys.stderr)
        raise LoadFailedError(2)


def open_state(config: Config, command: str) -> StateStore:
    """The config's state (a file or PostgreSQL), for commands that read or edit it while the
    daemon runs."""
    try:
        return open_state_of(config.state)
    except StateStoreError as exc:
        print(f"watcher {command}: {exc}", file=sys.stderr)
        raise LoadFailedError(2) from exc


def load(config_path: Path, rule_paths: list[Path] | None = None, *, strict: bool = True) -> Loaded:
    """Load the config and rules, printing every error to stderr.

    With ``strict`` any rule error fails the load (commands that must not run a partial rule
    set); otherwise the valid rules are returned and the errors only printed.
    """
    _exists(config_path)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise LoadFailedError from exc
    ruleset = load_rules(rule_paths or list(config.rules), config)
    for error in ruleset.errors:
        print(error, file=sys.stderr)
    if ruleset.errors and strict:
        raise LoadFailedError
    return Loaded(config, list(ruleset.rules), [str(error) for error in ruleset.errors], dict(ruleset.files))


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the header first) as left-aligned columns two spaces apart, trailing spaces cut."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)

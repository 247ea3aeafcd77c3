"""What several commands share: the --config option and loading config + rules with clear errors."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from watcher.config import Config
from watcher.incidents.state import StateStore, StateStoreError
from watcher.rules.loader import ConfigError, load_config, load_rules
from watcher.rules.models import Rule

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
    """Config or rules could not be loaded; the errors were already printed."""


def load_config_only(config_path: Path) -> Config:
    """The config alone (commands that work on the state file, not on rules), errors printed."""
    if not config_path.exists():
        print(f"watcher: config file {config_path} not found (use --config FILE)", file=sys.stderr)
        raise LoadFailedError
    try:
        return load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise LoadFailedError from exc


def open_state(config: Config, command: str) -> StateStore:
    """The config's state file, for commands that read or edit it while the daemon runs."""
    try:
        return StateStore(config.state.path)
    except StateStoreError as exc:
        print(f"watcher {command}: {exc}", file=sys.stderr)
        raise LoadFailedError from exc


def load(config_path: Path, rule_paths: list[Path] | None = None, *, strict: bool = True) -> Loaded:
    """Load the config and rules, printing every error to stderr.

    With ``strict`` any rule error fails the load (commands that must not run a partial rule
    set); otherwise the valid rules are returned and the errors only printed.
    """
    if not config_path.exists():
        print(f"watcher: config file {config_path} not found (use --config FILE)", file=sys.stderr)
        raise LoadFailedError
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

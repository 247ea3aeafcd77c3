# ruff: noqa: N999 -- the module is named after the command, as COMMANDS requires
"""``watcher import``: the command's registry entry; the code is in ``watcher.cli.import_``."""

from watcher.cli.import_ import add_parser, run

__all__ = ["add_parser", "run"]

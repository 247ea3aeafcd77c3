"""``watcher schema``: print or write the JSON Schema of rule files, for editors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from watcher.rules.schema import rule_json_schema

DESCRIPTION = """\
Print the JSON Schema of a rule file (one rule, or 'rules:' with a list of rules).

Editors use it to complete and check rule files as you type. With the YAML language
server (VS Code's YAML extension, or any LSP client), write the schema to a file and
point your rule files at it, e.g. with a first line of:
  # yaml-language-server: $schema=../rule.schema.json
The schema checks shapes and types; `watcher check` also checks sources, names and filters.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of rule files (for editors)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the schema to FILE instead of standard output",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = json.dumps(rule_json_schema(), indent=2) + "\n"
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"watcher schema: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote the rule schema to {output}")
    return 0

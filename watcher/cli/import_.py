"""``watcher import elastalert``: convert ElastAlert 2 rules into watcher rules and receivers.

Registered as the command ``import`` (``watcher/cli/import.py`` re-exports this module: ``import``
is a Python keyword, so the code lives here, importable by name).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.importers.elastalert.folder import (
    Importer,
    ImportUsageError,
    dump,
    import_folder,
    read_config,
)
from watcher.importers.elastalert.report import FileReport, Status, exit_code

DESCRIPTION = """\
Convert ElastAlert 2 rule files into watcher rule files, and their indexes and alerters (slack,
email, post/post2, twilio, debug; alertmanager labels) into the sources, receivers and routes of a
watcher.yaml fragment.

One line per input file: converted, converted with an approximation (then one line per
approximated option), or not convertible (why), each with the file:line concerned.
Exit codes: 0 every rule converted (approximations included), 1 some rule not convertible,
2 a usage or environment error, or a rule file that exists (use --force).
"""

EPILOG = """\
examples:
  watcher import elastalert ea/rules -o rules/
  watcher import elastalert ea/rules --config ea/config.yaml -o rules/ --receivers imported.yaml
then merge the fragment into watcher.yaml and run `watcher check`.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import", help="convert another tool's rules (ElastAlert 2) into watcher rules"
    )
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    elastalert = tools.add_parser(
        "elastalert",
        help="ElastAlert 2 rule files",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    elastalert.add_argument(
        "rules_dir", type=Path, metavar="RULES_DIR", help="folder of ElastAlert 2 rule files"
    )
    elastalert.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="ElastAlert 2's config.yaml (run_every, buffer_time, es_host, alerter defaults)",
    )
    elastalert.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="folder for the watcher rule files"
    )
    elastalert.add_argument(
        "--receivers",
        type=Path,
        metavar="FILE",
        help="write the watcher.yaml fragment here (default: print it)",
    )
    elastalert.add_argument(
        "--force", action="store_true", help="overwrite existing rule files and --receivers"
    )
    elastalert.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _import(args)
    except ImportUsageError as exc:
        print(f"watcher import: {exc}", file=sys.stderr)
        return 2


def _import(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.output.is_dir():
        raise ImportUsageError(f"{args.output}: not a folder")
    if args.receivers is not None and args.receivers.exists() and not args.force:
        raise ImportUsageError(f"{args.receivers} exists (use --force to overwrite)")
    config = read_config(args.config) if args.config is not None else None
    importer = Importer(args.output, config, args.force)
    reports = import_folder(args.rules_dir, importer)
    for report in reports:
        print("\n".join(report.lines()))
    print(summary(reports))
    fragment = "# watcher.yaml fragment: merge it into watcher.yaml\n" + dump(importer.fragment())
    if args.receivers is not None:
        args.receivers.write_text(fragment)
        print(f"watcher.yaml fragment (sources, receivers, route) written to {args.receivers}")
    else:
        print(fragment, end="")
    return exit_code(reports)


def summary(reports: list[FileReport]) -> str:
    counts = {status: sum(report.status is status for report in reports) for status in Status}
    parts = [f"{counts[status]} {status.value}" for status in Status]
    return f"{len(reports)} files: {', '.join(parts)}"

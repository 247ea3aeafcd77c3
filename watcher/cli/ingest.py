"""``watcher ingest --source NAME FILE.jsonl``: load a JSON-lines log into a configured source, so
the same log (the demo's, a production sample) can be replayed on the embedded store or on
Elasticsearch / OpenSearch.

Loading is idempotent: a file already loaded (the embedded store's read offsets; for a search
index, a ledger of path, size and a hash of its start next to the state file) is skipped with a
message, a file that grew loads only its new lines, and ``--again`` loads it whole once more.

Exit codes: 0 everything loaded (or already loaded), 1 some lines were skipped (the rest is loaded;
a summary on stderr), 2 the command could not run (config, unknown source, unreachable store) or
no line of the file could be used.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from watcher.config import EmbeddedSource, SearchSource
from watcher.rules.loader import ConfigError, load_config
from watcher.store.base import StoreError
from watcher.store.bulk import ingest_index, load_file, new_index_mappings
from watcher.store.ingest import FileCursor, IngestReport
from watcher.store.ledger import Ledger, loaded_file, resume_point
from watcher.store.rejections import no_usable_lines, summary

LEDGER_NAME = "ingest-ledger.json"
"""Files loaded into search indexes, next to the state file (the embedded store keeps its own)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load a JSON-lines log file into a source (embedded, Elasticsearch or OpenSearch)",
        description="Load a JSON-lines file into the source NAME of watcher.yaml. A search source gets "
        "the documents through _bulk (an index that does not exist is created with the time field "
        "as a date and strings as keywords). A file loaded before is skipped (only lines appended since "
        "are loaded) unless --again. Skipped lines are summarised by reason with the first one's line "
        "number. Exit code 0: all loaded, 1: some lines skipped, 2: nothing could be loaded.",
    )
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=Path("watcher.yaml"),
        metavar="FILE",
        help="default: ./watcher.yaml",
    )
    parser.add_argument("--source", required=True, metavar="NAME", help="a source defined in watcher.yaml")
    parser.add_argument(
        "--index",
        metavar="INDEX",
        help="index to write to (search sources; default: the source's index pattern with * read "
        "as 'ingest', e.g. ml-api-* -> ml-api-ingest)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=5000, metavar="N", help="documents per _bulk request"
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="load the file even if it was loaded before (its documents are then stored twice)",
    )
    parser.add_argument("file", type=Path, metavar="FILE.jsonl", help="the JSON-lines file to load")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read config {args.config}: {exc.strerror or exc}")
    source = config.sources.get(args.source)
    if source is None:
        known = ", ".join(sorted(config.sources)) or "none"
        return _fail(f"unknown source {args.source!r} (defined: {known})")
    if not args.file.is_file():
        return _fail(f"file {args.file} not found")
    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1")
    if isinstance(source, EmbeddedSource):
        return _ingest_embedded(source, args.file, args.again)
    return _ingest_search(source, args, config.state.path.parent / LEDGER_NAME)


def _ingest_search(source: SearchSource, args: argparse.Namespace, ledger_path: Path) -> int:
    from watcher.store.search import SearchStore

    try:
        index = args.index or ingest_index(source.index)
        store = SearchStore(source)
    except ValueError as exc:
        return _fail(str(exc))
    ledger = Ledger(ledger_path, args.source, index)
    try:
        if store.ensure_index(index, new_index_mappings(source.time_field)):
            ledger.forget_index()
        resume = None if args.again else resume_point(args.file, ledger.find(args.file))
        if resume is not None and resume.offset == args.file.stat().st_size:
            return _already(args.file, index, resume.line)
        report = load_file(store, args.file, index, args.batch_size, resume)
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    before = resume.line if resume is not None else 0
    ledger.record(args.file, loaded_file(args.file, max(report.last_line, before)))
    print(f"{args.file}: {_loaded(report.lines, resume)} into {index} ({store.describe})")
    code = _outcome(report.lines, source.time_field, args.file, resume)
    if code == 1:  # the server's reasons say which value did not fit the mapping
        for line, reason in report.examples:
            print(f"  line {line}: {reason}", file=sys.stderr)
        if report.rejected_total > len(report.examples):
            print(f"  ... and {report.rejected_total - len(report.examples):,} more", file=sys.stderr)
    return code


def _ingest_embedded(source: EmbeddedSource, path: Path, again: bool) -> int:
    from watcher.store.embedded import EmbeddedStore

    store = EmbeddedStore(source.path, time_field=source.time_field, time_format=source.time_format)
    try:
        if again:
            store.forget_file(path)
        before = store.file_cursor(path)
        if before is not None and before.offset == path.stat().st_size:
            return _already(path, source.path, before.line)
        report = store.ingest_files([glob.escape(str(path))])
    finally:
        store.close()
    print(f"{path}: {_loaded(report, before)} into {source.path}")
    return _outcome(report, source.time_field, path, before)


def _already(path: Path, target: object, lines: int) -> int:
    print(
        f"{path}: already ingested into {target} ({lines:,} lines); nothing loaded (--again loads it again)"
    )
    return 0


def _loaded(report: IngestReport, resumed: FileCursor | None) -> str:
    loaded = f"{report.rows_stored:,} of {report.lines_read:,} documents loaded"
    return f"{loaded} (new lines after line {resumed.line:,})" if resumed is not None else loaded


def _outcome(report: IngestReport, time_field: str, path: Path, resumed: FileCursor | None) -> int:
    """0: every line loaded; 1: some skipped (summarised); 2: none could be used (or, reading the
    file from its start, there was none)."""
    if not report.rows_stored and (report.lines_read or resumed is None):
        return _fail(no_usable_lines(report, time_field, str(path)))
    if not report.skipped_total:
        return 0
    print(summary(report, time_field), file=sys.stderr)
    return 1


def _fail(message: str) -> int:
    print(f"watcher ingest: {message}", file=sys.stderr)
    return 2

"""``watcher ingest --source NAME FILE.jsonl``: load a JSON-lines log into a configured source, so
the same log (the demo's, a production sample) can be replayed on the embedded store or on
Elasticsearch / OpenSearch.

Exit codes: 0 everything loaded, 1 some documents were rejected (the rest is loaded), 2 the
command could not run (config, unknown source, unreachable store).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.config import EmbeddedSource, SearchSource
from watcher.rules.loader import ConfigError, load_config
from watcher.store.base import StoreError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load a JSON-lines log file into a source (embedded, Elasticsearch or OpenSearch)",
        description="Load a JSON-lines file into the source NAME of watcher.yaml. A search source gets "
        "the documents through _bulk (an index that does not exist is created with the time field "
        "as a date and strings as keywords); rejected documents are listed with their line number. "
        "Exit code 0: all loaded, 1: some rejected, 2: nothing could be done.",
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
        return _ingest_embedded(source, args.file)
    return _ingest_search(source, args)


def _ingest_search(source: SearchSource, args: argparse.Namespace) -> int:
    from watcher.store.bulk import ingest_index, load_file
    from watcher.store.search import SearchStore

    try:
        index = args.index or ingest_index(source.index)
        store = SearchStore(source)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        report = load_file(store, args.file, index, args.batch_size)
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    loaded = f"{report.indexed:,} of {report.lines_read:,} documents"
    print(f"{args.file}: {loaded} loaded into {index} ({store.describe})")
    if not report.rejected_total:
        return 0
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in report.rejected.most_common())
    print(f"{report.rejected_total:,} rejected: {kinds}")
    for line, reason in report.examples:
        print(f"  line {line}: {reason}")
    if report.rejected_total > len(report.examples):
        print(f"  ... and {report.rejected_total - len(report.examples):,} more")
    return 1


def _ingest_embedded(source: EmbeddedSource, path: Path) -> int:
    from watcher.store.embedded import EmbeddedStore

    store = EmbeddedStore(source.path, time_field=source.time_field)
    try:
        with path.open("rb") as handle:
            report = store.ingest_lines(handle)
    finally:
        store.close()
    print(f"{path}: {report.rows_stored:,} of {report.lines_read:,} documents loaded into {source.path}")
    if not report.skipped_total:
        return 0
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in report.skipped.most_common())
    print(f"{report.skipped_total:,} rejected: {kinds}")
    return 1


def _fail(message: str) -> int:
    print(f"watcher ingest: {message}", file=sys.stderr)
    return 2

"""``watcher baseline build``: write a feature baseline profile for the drift and validity rules.

From a configured source (aggregations over a time range; no raw rows leave the store) or from a
file of training data (CSV, Parquet, JSON-lines, read with pandas).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import yaml

from watcher.baseline import FeatureType, Profile, profile_from_frame, read_frame, save_profile
from watcher.baseline_checks import ProfileRefusedError, check_profile, check_slots, check_source_has_data
from watcher.baseline_clock import frame_tallies, store_tallies, warnings
from watcher.baseline_seasonal import seasonal_from_frame
from watcher.baseline_store import profile_from_store, seasonal_from_store
from watcher.cli.common import add_config_argument, parse_time
from watcher.config import EmbeddedSource
from watcher.query import Window
from watcher.query_filters import Filter, parse_filter
from watcher.rules.loader import ConfigError, load_config
from watcher.store.factory import open_store

DESCRIPTION = """\
Build a baseline profile: per feature its type, decile bins (numeric) or top values (categorical),
missing rate and range. Commit the file next to the rules that use it (drift, validity).

With --by hour (or weekday_hour) the profile also holds one slot per hour of the day (of the
week), in UTC: drift and validity compare a window with the slots it falls in, so features that
follow the clock do not drift all day. A source's range must then start and end on whole hours.

No profile is written when it would be empty or partial: no rows in the range (exit 1; exit 2 when
the source holds no documents at all), a feature without a value in any row (exit 1), or a slot
with fewer than --min-slot-rows rows (exit 1).
"""

EPILOG = """\
examples:
  watcher baseline build --source ml-api --start 2026-01-04T00:00Z --end 2026-01-05T00:00Z \\
      --where '{service: prediction-api}' --features features.age,features.country -o baselines/ml-api.json
  watcher baseline build --from-file training.parquet --prefix features. -o baselines/churn.json
  watcher baseline build --source ml-api --start 2026-01-01T00:00Z --end 2026-01-29T00:00Z \\
      --features features.age --by weekday_hour -o baselines/ml-api-weekly.json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "baseline", help="build feature baseline profiles for drift/validity rules"
    )
    commands = parser.add_subparsers(dest="baseline_command", metavar="COMMAND", required=True)
    build = commands.add_parser(
        "build",
        help="build a profile from a source or a training-data file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(build)
    origin = build.add_mutually_exclusive_group(required=True)
    origin.add_argument(
        "--source", metavar="NAME", help="a source of watcher.yaml (needs --start, --end, --features)"
    )
    origin.add_argument(
        "--from-file", type=Path, metavar="FILE", help="training data: .csv, .parquet, .jsonl"
    )
    build.add_argument("--start", type=parse_time, metavar="ISO8601", help="start of the time range (source)")
    build.add_argument("--end", type=parse_time, metavar="ISO8601", help="end of the time range (source)")
    build.add_argument("--where", metavar="FILTER", help="rule-style filter as YAML, e.g. '{service: api}'")
    build.add_argument(
        "--features", metavar="F1,F2", help="fields to profile (default with --from-file: all)"
    )
    build.add_argument(
        "--types", metavar="F=TYPE,...", help="override inferred types: numeric or categorical"
    )
    build.add_argument("--prefix", default="", help="prepend to column names of a file, e.g. 'features.'")
    build.add_argument("--top", type=int, default=20, help="categories kept by name (default 20)")
    build.add_argument(
        "--max-values", type=int, default=1000, help="values listed for unseen checks (default 1000)"
    )
    build.add_argument(
        "--by",
        choices=("hour", "weekday_hour"),
        help="also profile each hour of the day (24 slots) or of the week (168 slots), UTC",
    )
    build.add_argument(
        "--min-slot-rows", type=int, default=100, metavar="N", help="rows each slot needs (--by; default 100)"
    )
    build.add_argument(
        "--time-field",
        metavar="COLUMN",
        help="the time column of a file (--by; default: a source's time_field)",
    )
    build.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE.json", help="profile to write"
    )
    build.set_defaults(func=run)


class UsageError(Exception):
    """A bad combination of options; the message is printed as is."""


def run(args: argparse.Namespace) -> int:
    try:
        profile = _from_file(args) if args.from_file is not None else _from_source(args)
    except ProfileRefusedError as exc:
        print(f"watcher baseline: {exc}; no profile written", file=sys.stderr)
        return exc.code
    except (UsageError, ValueError) as exc:
        print(f"watcher baseline: {exc}", file=sys.stderr)
        return 2
    save_profile(profile, args.output)
    kinds = ", ".join(f"{name} ({feature.type})" for name, feature in profile.features.items())
    slots = f", {len(profile.slots)} slots by {profile.by}" if profile.slots else ""
    print(f"wrote {args.output}: {profile.rows} rows, {len(profile.features)} features{slots}: {kinds}")
    return 0


def _features(args: argparse.Namespace) -> list[str] | None:
    if not args.features:
        return None
    return [name.strip() for name in args.features.split(",") if name.strip()]


def _types(args: argparse.Namespace) -> dict[str, FeatureType]:
    types: dict[str, FeatureType] = {}
    for item in (args.types or "").split(","):
        if not item.strip():
            continue
        name, _, kind = item.partition("=")
        if kind.strip() not in ("numeric", "categorical"):
            raise UsageError(f"--types {item.strip()!r}: use FIELD=numeric or FIELD=categorical")
        types[name.strip()] = cast(FeatureType, kind.strip())
    return types


def _options(args: argparse.Namespace) -> None:
    if args.top < 1 or args.max_values < 1:
        raise UsageError("--top and --max-values must be at least 1")
    if args.min_slot_rows < 0:
        raise UsageError("--min-slot-rows must be 0 or more")


def _from_file(args: argparse.Namespace) -> Profile:
    _options(args)
    if args.start or args.end or args.where:
        raise UsageError("--start, --end and --where apply to --source; filter a file before profiling it")
    if args.by and not args.time_field:
        raise UsageError("--by needs --time-field: the file's column with each row's time")
    frame = read_frame(args.from_file)
    if args.time_field and args.time_field not in frame.columns:
        raise UsageError(f"--time-field {args.time_field!r} is not a column of {args.from_file}")
    features = _features(args) or [str(c) for c in frame.columns if c != args.time_field]
    profile = profile_from_frame(
        frame,
        built_at=datetime.now(UTC),
        source=str(args.from_file),
        features=features,
        types=_types(args),
        prefix=args.prefix,
        top=args.top,
        max_values=args.max_values,
    )
    check_profile(profile, str(args.from_file))
    if args.time_field:
        tallies = frame_tallies(profile, frame, args.time_field, args.prefix)
        _warn(warnings(profile, tallies, args.time_field, args.by))
    if args.by:
        profile = seasonal_from_frame(
            profile, frame, time_field=args.time_field, by=args.by, prefix=args.prefix
        )
        check_slots(profile, str(args.from_file), args.min_slot_rows)
    return profile


def _from_source(args: argparse.Namespace) -> Profile:
    _options(args)
    features = _features(args)
    if args.start is None or args.end is None or not features:
        raise UsageError("--source needs --start, --end and --features")
    if args.end <= args.start:
        raise UsageError("--end must be after --start")
    if args.prefix:
        raise UsageError("--prefix applies to --from-file; name the log fields in --features")
    if args.time_field:
        raise UsageError("--time-field applies to --from-file; a source reads its time_field")
    if args.by and not (_whole_hour(args.start) and _whole_hour(args.end)):
        raise UsageError("--by needs --start and --end on whole hours (UTC), e.g. 2026-01-04T00:00Z")
    where = _where(args.where)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.source not in config.sources:
        known = ", ".join(sorted(config.sources)) or "none"
        raise UsageError(f"unknown source {args.source!r} (defined: {known})")
    source = config.sources[args.source]
    from watcher.store.embedded import EmbeddedStore  # lazily: DuckDB and pandas are heavy imports

    store = open_store(source)
    try:
        if isinstance(source, EmbeddedSource) and isinstance(store, EmbeddedStore) and source.ingest:
            store.ingest_files(source.ingest)  # catch up as the daemon would; cursors make it idempotent
        profile = profile_from_store(
            store,
            source=args.source,
            window=Window(args.start, args.end),
            features=features,
            built_at=datetime.now(UTC),
            where=where,
            where_text=args.where,
            types=_types(args),
            top=args.top,
            max_values=args.max_values,
        )
        if not profile.rows:
            check_source_has_data(store, args.source, source.time_field)
        check_profile(profile, _origin(args))
        tallies = store_tallies(store, profile, Window(args.start, args.end), where)
        _warn(warnings(profile, tallies, source.time_field, args.by))
        if args.by:
            window = Window(args.start, args.end)
            profile = seasonal_from_store(store, profile, window=window, where=where, by=args.by)
            check_slots(profile, _origin(args), args.min_slot_rows)
    finally:
        store.close()
    return profile


def _warn(found: list[str]) -> None:
    for warning in found:
        print(f"watcher baseline: warning: {warning}", file=sys.stderr)


def _whole_hour(time: datetime) -> bool:
    return time == time.replace(minute=0, second=0, microsecond=0)


def _origin(args: argparse.Namespace) -> str:
    """The rows a source profile reads, in words."""
    span = f"{args.start:%Y-%m-%dT%H:%M:%SZ} to {args.end:%Y-%m-%dT%H:%M:%SZ}"
    return f"source {args.source!r} from {span}" + (f" matching {args.where}" if args.where else "")


def _where(text: str | None) -> Filter:
    if not text:
        return parse_filter(None)
    try:
        return parse_filter(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise UsageError(f"--where is not valid YAML: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"--where: {exc}") from None

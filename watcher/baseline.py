"""Feature baseline profiles: what "normal" looked like, for the drift and validity detectors.

A profile is a versioned JSON file that SREs commit next to the rules. Per feature it holds the
type (numeric or categorical), for numerics decile bin edges with the share of rows in each bin
(plus an underflow bin below the baseline minimum and an overflow bin above its maximum),
p0.1 / p99.9 and min / max; for categoricals the shares of the top N values plus ``__other__`` and,
when there are not too many, every value seen (the validity detector counts unseen values
against it). Every feature has its missing rate. Bins follow ``watcher.query.Histogram``: edges
e0 < ... < ek give buckets (-inf, e0), [e0, e1), ..., [ek, +inf).

Profiles are built from training data (CSV, Parquet, JSON-lines; read into pandas) or from a log
store through aggregations (``watcher.baseline_store``; no raw rows leave the store). NaN and null
are missing; +-inf count as present values (they land in the under/overflow bins) but are left out
of quantiles and ranges.

Format version 2 adds seasonal profiles (``by: hour`` or ``weekday_hour``, one slot per hour of
the day or of the week, see ``watcher.baseline_slots``); a profile without slots is still written
as version 1, so older watchers read it, and every version 1 file still loads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from watcher.baseline_slots import Slot, SlotBy
from watcher.rules.reader import Limits, MissingFileError, ReadError, read_text

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROFILE_VERSION = 2
"""the newest format: version 1 (no slots) still loads, and is still written for a whole-range profile"""
VERSIONS = (1, 2)
PROFILE_LIMITS = Limits(max_bytes=64 * 1024 * 1024)
"""a profile holds every categorical value seen: allowed to be larger than a rule file"""
OTHER = "__other__"
FeatureType = Literal["numeric", "categorical"]
DECILES = tuple(float(q) for q in range(10, 100, 10))
TAILS = (0.1, 99.9)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NumericFeature(_Model):
    """A numeric feature: the baseline's shares of rows per bin, and its range."""

    type: Literal["numeric"] = "numeric"
    count: int = Field(ge=0, description="rows with a value")
    missing_rate: float = Field(ge=0, le=1)
    edges: tuple[float, ...] = Field(description="decile edges; the last is just above the maximum")
    shares: tuple[float, ...] = Field(description="len(edges) + 1 shares, underflow first, overflow last")
    min: float | None = None
    max: float | None = None
    p0_1: float | None = Field(default=None, alias="p0.1")
    p99_9: float | None = Field(default=None, alias="p99.9")

    def bin_counts(self) -> list[float]:
        """Shares scaled to the row count, for the two-sample statistics."""
        return [share * self.count for share in self.shares]


class CategoricalFeature(_Model):
    """A categorical feature: shares of its top values plus ``__other__``, and every value seen."""

    type: Literal["categorical"] = "categorical"
    count: int = Field(ge=0, description="rows with a value")
    missing_rate: float = Field(ge=0, le=1)
    shares: dict[str, float] = Field(description=f"top values and {OTHER!r}, summing to 1")
    values: tuple[str, ...] | None = Field(
        default=None, description="every value seen, or null when there were more than max_values"
    )

    @property
    def categories(self) -> list[str]:
        """The named categories (without ``__other__``), most frequent first."""
        return [name for name in self.shares if name != OTHER]


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="type")]


class Profile(_Model):
    """A baseline profile: the whole range's features and, in a seasonal profile (version 2),
    the same features per slot of ``by``."""

    version: Literal[1, 2] = 1
    built_at: datetime
    source: str = Field(description="a file path or a source name")
    where: str | None = Field(default=None, description="the filter the rows were selected with")
    start: datetime | None = None
    end: datetime | None = None
    rows: int = Field(ge=0)
    features: dict[str, Feature]
    by: SlotBy | None = Field(default=None, description="seasonal: one slot per hour or weekday hour (UTC)")
    slots: dict[str, Slot] | None = Field(default=None, description="slot name -> its rows and features")

    @model_validator(mode="before")
    @classmethod
    def _seasonal_is_version_2(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("by") is not None and "version" not in data:
            return {**data, "version": 2}
        return data

    @model_validator(mode="after")
    def _slots_match_by(self) -> Profile:
        if (self.by is None) != (self.slots is None):
            raise ValueError("'by' and 'slots' go together")
        if self.by is not None and self.version < 2:
            raise ValueError("a seasonal profile ('by') is version 2")
        return self


# --------------------------------------------------------------------------- files


def save_profile(profile: Profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profile.model_dump_json(by_alias=True, indent=2) + "\n", encoding="utf-8")


def load_profile(path: Path) -> Profile:
    """Read a profile; raise ``ValueError`` naming the file and the problem (the rule loader shows
    it at the rule's ``baseline:``). Read by the reader every file goes through (``read_text``):
    a folder, an unreadable or oversized file is a message, never an ``OSError``."""
    try:
        data = json.loads(read_text(path, PROFILE_LIMITS))
    except MissingFileError:
        raise ValueError(f"baseline {path}: file not found") from None
    except ReadError as exc:
        raise ValueError(f"baseline {path}: {exc.message}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"baseline {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # a number of 4,300 digits, arrays 1,000 deep
        raise ValueError(f"baseline {path}: not a profile ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"baseline {path}: expected a JSON object")
    if data.get("version") not in VERSIONS:
        raise ValueError(
            f"baseline {path}: version {data.get('version')!r} is not supported "
            f"(this watcher reads versions {', '.join(map(str, VERSIONS))})"
        )
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"baseline {path}: {where}: {first['msg']}") from None


# --------------------------------------------------------------------------- shared numerics


def decile_edges(minimum: float, inner: Sequence[float], maximum: float) -> tuple[float, ...]:
    """Bin edges from the min, the p10..p90 deciles and the max. Ties (and constant features)
    collapse; the last edge sits just above the max, so the max falls in the last decile and only
    values beyond the baseline's range land in the overflow bin."""
    below = sorted({float(minimum), *(float(q) for q in inner if q < maximum)})
    return (*below, math.nextafter(maximum, math.inf))


def bucket_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts per ``Histogram`` bucket: (-inf, e0), [e0, e1), ..., [ek, +inf)."""
    import numpy as np  # only when building a profile: the daemon need not load NumPy

    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return [int(c) for c in np.bincount(index, minlength=len(edges) + 1)]


def shares_of(counts: Sequence[float], total: float) -> tuple[float, ...]:
    return tuple((c / total) if total else 0.0 for c in counts)


def categorical(
    counts: Mapping[str, int], present: int, missing_rate: float, top: int, max_values: int
) -> CategoricalFeature:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shares = {name: count / present for name, count in ranked[:top]}
    shares[OTHER] = (present - sum(count for _, count in ranked[:top])) / present if present else 0.0
    values = tuple(sorted(counts)) if len(counts) <= max_values else None
    return CategoricalFeature(count=present, missing_rate=missing_rate, shares=shares, values=values)


# --------------------------------------------------------------------------- from pandas


def read_frame(path: Path) -> pd.DataFrame:
    """Training data as a DataFrame: ``.csv``, ``.parquet`` (read through DuckDB, so no pyarrow is
    needed) or JSON-lines (``.jsonl``/``.ndjson``/``.json``; nested objects become dotted columns
    such as ``features.age``, the field paths rules use)."""
    import pandas as pd

    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        import duckdb

        return duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
        return pd.json_normalize(rows)
    raise ValueError(f"{path}: unknown file type {suffix!r} (use .csv, .parquet, .jsonl, .ndjson or .json)")


def profile_from_frame(
    frame: pd.DataFrame,
    *,
    built_at: datetime,
    source: str,
    features: Sequence[str] | None = None,
    types: Mapping[str, FeatureType] | None = None,
    prefix: str = "",
    top: int = 20,
    max_values: int = 1000,
) -> Profile:
    """Profile the columns ``features`` (default: all) of ``frame``. A column's type is inferred
    (numbers -> numeric, anything else incl. booleans -> categorical) unless ``types`` says.
    ``prefix`` is prepended to every feature name (``features.`` maps a training-data column
    ``age`` to the log field ``features.age``)."""
    names = list(features) if features is not None else [str(c) for c in frame.columns]
    absent = [name for name in names if name not in frame.columns]
    if absent:
        raise ValueError(
            f"no column {absent[0]!r} in {source} (columns: {', '.join(map(str, frame.columns))})"
        )
    profiled: dict[str, Feature] = {}
    for name in names:
        kind = (types or {}).get(name) or _infer(frame[name])
        column = frame[name]
        profiled[prefix + name] = (
            _numeric_from_column(column)
            if kind == "numeric"
            else _categorical_from_column(column, top, max_values)
        )
    return Profile(built_at=built_at, source=source, rows=len(frame), features=profiled)


def _infer(column: pd.Series) -> FeatureType:
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column):
        return "numeric"
    present = column.dropna()
    numeric = present.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
    return "numeric" if len(present) and bool(numeric.all()) else "categorical"


def _numeric_from_column(column: pd.Series) -> NumericFeature:
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    present = values[~np.isnan(values)]
    finite = present[np.isfinite(present)]
    missing_rate = 1 - len(present) / len(values) if len(values) else 0.0
    if not len(finite):
        return NumericFeature(
            count=len(present),
            missing_rate=missing_rate,
            edges=(),
            shares=shares_of([len(present)], len(present)),
        )
    low, *inner, high = np.quantile(finite, (0.0, *(q / 100 for q in DECILES), 1.0)).tolist()
    tail_low, tail_high = np.quantile(finite, tuple(q / 100 for q in TAILS)).tolist()
    edges = decile_edges(low, inner, high)
    return NumericFeature(
        count=len(present),
        missing_rate=missing_rate,
        edges=edges,
        shares=shares_of(bucket_counts(present, edges), len(present)),
        min=low,
        max=high,
        p0_1=tail_low,
        p99_9=tail_high,
    )


def _categorical_from_column(column: pd.Series, top: int, max_values: int) -> CategoricalFeature:
    present = column.dropna().astype(str)
    missing_rate = 1 - len(present) / len(column) if len(column) else 0.0
    counts = {str(k): int(v) for k, v in present.value_counts().items()}
    return categorical(counts, len(present), missing_rate, top, max_values)

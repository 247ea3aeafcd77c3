"""Baseline profiles: built from pandas frames, files and a real embedded store; saved and loaded."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from watcher.baseline import (
    OTHER,
    CategoricalFeature,
    NumericFeature,
    Profile,
    bucket_counts,
    decile_edges,
    load_profile,
    profile_from_frame,
    read_frame,
    save_profile,
)
from watcher.baseline_store import profile_from_store
from watcher.cli import main
from watcher.query import Window
from watcher.query_filters import Eq
from watcher.store.embedded import EmbeddedStore

BUILT = datetime(2026, 1, 5, tzinfo=UTC)
T0 = datetime(2026, 1, 4, tzinfo=UTC)


def _frame(rows: int = 2000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    age[:100] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "income": rng.lognormal(10, 0.5, rows).round(2),
            "country": rng.choice(["DE", "FR", "US", "GB"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "plan": rng.choice(["free", "pro"], rows),
            "active": rng.choice([True, False], rows),
        }
    )


# --------------------------------------------------------------------------- numerics


def test_numeric_profile_has_decile_bins_with_empty_under_and_overflow() -> None:
    profile = profile_from_frame(_frame(), built_at=BUILT, source="train.csv", features=["income"])
    income = profile.features["income"]
    assert isinstance(income, NumericFeature)
    assert len(income.edges) == 11
    assert len(income.shares) == 12
    assert income.shares[0] == 0
    assert income.shares[-1] == 0
    assert sum(income.shares) == pytest.approx(1)
    assert all(s == pytest.approx(0.1, abs=0.002) for s in income.shares[1:-1])
    assert income.edges[0] == income.min
    assert income.edges[-1] > income.max
    assert income.min < income.p0_1 < income.p99_9 < income.max  # type: ignore[operator]


def test_missing_rate_counts_nan_and_the_rest_is_profiled() -> None:
    profile = profile_from_frame(_frame(), built_at=BUILT, source="t", features=["age"])
    age = profile.features["age"]
    assert age.missing_rate == pytest.approx(100 / 2000)
    assert age.count == 1900
    assert profile.rows == 2000


def test_constant_feature_gets_one_bin_of_its_own() -> None:
    frame = pd.DataFrame({"version": [3.0] * 50})
    version = profile_from_frame(frame, built_at=BUILT, source="t").features["version"]
    assert isinstance(version, NumericFeature)
    assert version.edges == (3.0, float(np.nextafter(3.0, math.inf)))
    assert version.shares == (0.0, 1.0, 0.0)


def test_infinite_values_are_present_in_the_tail_bins_but_not_in_the_range() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, math.inf, -math.inf, math.nan]})
    x = profile_from_frame(frame, built_at=BUILT, source="t").features["x"]
    assert isinstance(x, NumericFeature)
    assert (x.min, x.max, x.count) == (1.0, 3.0, 5)
    assert x.shares[0] == pytest.approx(1 / 5)
    assert x.shares[-1] == pytest.approx(1 / 5)
    assert x.missing_rate == pytest.approx(1 / 6)


def test_feature_without_any_value_has_no_bins() -> None:
    frame = pd.DataFrame({"x": [math.nan, math.nan]})
    x = profile_from_frame(frame, built_at=BUILT, source="t", types={"x": "numeric"}).features["x"]
    assert isinstance(x, NumericFeature)
    assert (x.edges, x.count, x.missing_rate, x.min) == ((), 0, 1.0, None)


def test_bucket_counts_follow_the_histogram_aggregate() -> None:
    edges = (1.0, 2.0, 3.0)
    values = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 9.0])
    assert bucket_counts(values, edges) == [1, 2, 1, 2]


def test_decile_edges_collapse_ties() -> None:
    assert decile_edges(0, [0, 0, 1, 1, 1, 2, 2, 2, 2], 2) == (0.0, 1.0, float(np.nextafter(2.0, math.inf)))


# --------------------------------------------------------------------------- categoricals and types


def test_categorical_profile_keeps_top_values_and_other() -> None:
    profile = profile_from_frame(_frame(), built_at=BUILT, source="t", features=["country"], top=2)
    country = profile.features["country"]
    assert isinstance(country, CategoricalFeature)
    assert country.categories == ["DE", "FR"]
    assert country.shares[OTHER] == pytest.approx(1 - country.shares["DE"] - country.shares["FR"])
    assert country.values == ("DE", "FR", "GB", "US")


def test_values_are_dropped_when_there_are_too_many() -> None:
    frame = pd.DataFrame({"client": [f"c-{i}" for i in range(30)]})
    client = profile_from_frame(frame, built_at=BUILT, source="t", max_values=10).features["client"]
    assert isinstance(client, CategoricalFeature)
    assert client.values is None


def test_types_are_inferred_and_can_be_overridden() -> None:
    frame = _frame()
    frame["zip"] = [str(10000 + i % 7) for i in range(len(frame))]
    frame["mixed"] = [1, 2.5] * (len(frame) // 2)
    frame["mixed"] = frame["mixed"].astype(object)
    profile = profile_from_frame(frame, built_at=BUILT, source="t", types={"age": "categorical"})
    kinds = {name: feature.type for name, feature in profile.features.items()}
    assert kinds == {
        "age": "categorical",
        "income": "numeric",
        "country": "categorical",
        "plan": "categorical",
        "active": "categorical",
        "zip": "categorical",
        "mixed": "numeric",
    }


def test_prefix_maps_columns_to_log_fields() -> None:
    profile = profile_from_frame(_frame(), built_at=BUILT, source="t", features=["age"], prefix="features.")
    assert list(profile.features) == ["features.age"]


def test_unknown_column_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^no column 'salary' in t \(columns: age, income, country, plan, active\)$"
    ):
        profile_from_frame(_frame(), built_at=BUILT, source="t", features=["salary"])


# --------------------------------------------------------------------------- files


def test_profile_round_trips_through_json_with_readable_keys(tmp_path: Path) -> None:
    profile = profile_from_frame(_frame(), built_at=BUILT, source="train.csv")
    path = tmp_path / "baselines" / "churn.json"
    save_profile(profile, path)
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert {"p0.1", "p99.9", "edges", "shares", "missing_rate", "min", "max"} <= set(
        data["features"]["income"]
    )
    assert load_profile(path) == profile


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "baseline {path}: file not found"),
        (
            "{not json",
            "baseline {path}: not valid JSON (Expecting property name enclosed in double quotes at line 1)",
        ),
        ("[]", "baseline {path}: expected a JSON object"),
        ('{"version": 3}', "baseline {path}: version 3 is not supported (this watcher reads versions 1, 2)"),
        (
            '{"version": 1, "built_at": "2026-01-05T00:00:00Z", "source": "t", "rows": -1, "features": {}}',
            "baseline {path}: rows: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_profile_files_are_refused_with_a_message(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=r"^baseline ") as caught:
        load_profile(path)
    assert str(caught.value) == message.format(path=path)


def test_read_frame_reads_csv_parquet_and_nested_json_lines(tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [30, 40], "country": ["DE", "FR"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    duckdb.connect().execute(
        f"COPY (SELECT 30 AS age, 'DE' AS country) TO '{tmp_path / 't.parquet'}' (FORMAT parquet)"
    )
    lines = [
        {"status": 200, "features": {"age": 30, "country": "DE"}},
        {"status": 500, "features": {"age": 41}},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert list(read_frame(tmp_path / "t.csv")["age"]) == [30, 40]
    assert list(read_frame(tmp_path / "t.parquet")["country"]) == ["DE"]
    nested = read_frame(tmp_path / "t.jsonl")
    assert list(nested["features.age"]) == [30, 41]
    assert nested["features.country"].isna().tolist() == [False, True]


def test_read_frame_refuses_unknown_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(
        ValueError, match=r"unknown file type '.xlsx' \(use .csv, .parquet, .jsonl, .ndjson or .json\)$"
    ):
        read_frame(tmp_path / "t.xlsx")
    with pytest.raises(ValueError, match=r"t.csv: file not found$"):
        read_frame(tmp_path / "t.csv")


# --------------------------------------------------------------------------- from a store


def _documents(frame: pd.DataFrame, start: datetime = T0) -> list[str]:
    lines = []
    for i, row in enumerate(frame.to_dict("records")):
        features = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        doc = {
            "@timestamp": (start + timedelta(seconds=i)).isoformat(),
            "service": "api",
            "features": features,
        }
        lines.append(json.dumps(doc))
    return lines


def test_profile_from_store_equals_the_profile_of_the_same_rows(tmp_path: Path) -> None:
    frame = _frame(rows=1500)[["age", "income", "country", "plan"]]
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    store.ingest_lines(_documents(frame))
    store.ingest_lines(_documents(frame.head(50), start=T0 + timedelta(days=2)))  # outside the window
    names = [f"features.{c}" for c in frame.columns]
    window = Window(T0, T0 + timedelta(days=1))
    from_store = profile_from_store(
        store,
        source="demo",
        window=window,
        features=names,
        built_at=BUILT,
        where=Eq("service", "api"),
        where_text="{service: api}",
    )
    from_frame = profile_from_frame(frame, built_at=BUILT, source="demo", prefix="features.")
    store.close()
    assert (from_store.rows, from_store.where, from_store.start) == (1500, "{service: api}", T0)
    for name in names:
        got, want = from_store.features[name], from_frame.features[name]
        assert got.type == want.type, name
        assert got.missing_rate == pytest.approx(want.missing_rate)
        if isinstance(got, NumericFeature) and isinstance(want, NumericFeature):
            assert got.edges == pytest.approx(want.edges, rel=1e-12)
            assert got.shares == pytest.approx(want.shares, abs=1e-12)
            assert (got.p0_1, got.p99_9) == (pytest.approx(want.p0_1), pytest.approx(want.p99_9))
        else:
            assert got == want


def test_profile_from_store_of_an_empty_window(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    profile = profile_from_store(
        store,
        source="demo",
        window=Window(T0, T0 + timedelta(hours=1)),
        features=["features.age"],
        built_at=BUILT,
        types={"features.age": "numeric"},
    )
    store.close()
    age = profile.features["features.age"]
    assert (profile.rows, age.count, age.type) == (0, 0, "numeric")


# --------------------------------------------------------------------------- the command


def test_cli_builds_a_profile_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _frame().to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "churn.json"
    code = main(
        [
            "baseline",
            "build",
            "--from-file",
            str(tmp_path / "train.csv"),
            "--features",
            "age,country",
            "--types",
            "age=numeric",
            "--prefix",
            "features.",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    profile = load_profile(out)
    assert list(profile.features) == ["features.age", "features.country"]
    assert capsys.readouterr().out == (
        f"wrote {out}: 2000 rows, 2 features: features.age (numeric), features.country (categorical)\n"
    )


def test_cli_builds_a_profile_from_a_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_text("\n".join(_documents(_frame(rows=300))) + "\n")
    config = tmp_path / "watcher.yaml"
    config.write_text("sources:\n  demo: {store: embedded, path: logs.duckdb, ingest: ['logs/*.jsonl']}\n")
    out = tmp_path / "b.json"
    code = main(
        [
            "baseline",
            "build",
            "-c",
            str(config),
            "--source",
            "demo",
            "--start",
            "2026-01-04T00:00Z",
            "--end",
            "2026-01-05T00:00Z",
            "--where",
            "{service: api}",
            "--features",
            "features.income,features.plan",
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    profile = load_profile(out)
    assert (profile.rows, profile.source, profile.where) == (300, "demo", "{service: api}")
    assert profile.features["features.plan"].type == "categorical"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "demo", "--features", "a"], "--source needs --start, --end and --features"),
        (
            [
                "--source",
                "nope",
                "--start",
                "2026-01-04T00:00Z",
                "--end",
                "2026-01-05T00:00Z",
                "--features",
                "a",
            ],
            "unknown source 'nope' (defined: demo)",
        ),
        (
            [
                "--source",
                "demo",
                "--start",
                "2026-01-05T00:00Z",
                "--end",
                "2026-01-04T00:00Z",
                "--features",
                "a",
            ],
            "--end must be after --start",
        ),
        (
            [
                "--source",
                "demo",
                "--start",
                "2026-01-04T00:00Z",
                "--end",
                "2026-01-05T00:00Z",
                "--features",
                "a",
                "--where",
                "{status: {gte: x}}",
            ],
            "--where: 'gte' for field 'status' must be a number, got 'x'",
        ),
        (
            ["--from-file", "t.csv", "--start", "2026-01-04T00:00Z"],
            "--start, --end and --where apply to --source; filter a file before profiling it",
        ),
        (
            ["--from-file", "t.csv", "--types", "age=int"],
            "--types 'age=int': use FIELD=numeric or FIELD=categorical",
        ),
        (["--from-file", "missing.csv"], "missing.csv: file not found"),
    ],
)
def test_cli_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "watcher.yaml").write_text("sources:\n  demo: {store: embedded, path: logs.duckdb}\n")
    pd.DataFrame({"age": [1]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["baseline", "build", *argv, "-o", "out.json"]) == 2
    assert capsys.readouterr().err == f"watcher baseline: {message}\n"
    assert not (tmp_path / "out.json").exists()


def test_profile_model_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Profile.model_validate({"built_at": BUILT, "source": "t", "rows": 0, "features": {}, "extra": 1})

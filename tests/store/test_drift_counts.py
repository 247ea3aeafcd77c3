"""The embedded store's drift counts: bins by DuckDB's ``histogram`` with boundaries, categories from
the per-value counts. The same counts as numpy on the raw values (values equal to an edge in the bin
above it) and the same scores, to the last bit, as the statement that compared every row with every
edge and category (values recorded from it on this data)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watcher.baseline import NumericFeature, bucket_counts, profile_from_frame
from watcher.detect import drift
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
COUNT = "features.count"
SCORE = "features.score"
COUNTRY = "features.country"


def frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """Integers (equal to the profile's edges), values rounded to one decimal, a rare country."""
    rng = np.random.default_rng(seed)
    countries = ["DE", "FR", "US", "JP", "BR"] if shift else ["DE", "FR", "US", "JP"]
    weights = np.array([5, 3, 2, 0.05, 1.0][: len(countries)])
    return pd.DataFrame(
        {
            "count": rng.poisson(12 + 4 * shift, rows).astype(float),
            "score": rng.normal(50 + 5 * shift, 10, rows).round(1),
            "country": rng.choice(countries, rows, p=weights / weights.sum()),
            "svc": rng.choice(["a", "b"], rows),
        }
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddedStore, Any, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("drift")
    profile = profile_from_frame(
        frame(4000, 1, 0.0).drop(columns="svc"), built_at=AT, source="train", prefix="features."
    )
    window = frame(3000, 2, 0.5)
    store = EmbeddedStore(Path(folder) / "logs.duckdb")
    step = timedelta(hours=1) / len(window)
    store.ingest_lines(
        json.dumps(
            {
                "@timestamp": (AT - timedelta(hours=1) + i * step).isoformat(),
                "svc": row.pop("svc"),
                "features": row,
            }
        )
        for i, row in enumerate(window.to_dict("records"))
    )
    yield store, profile, window
    store.close()


def rule(profile: Any, method: str, features: list[str]) -> Rule:
    spec = {"baseline": profile, "method": method, "features": features, "min_samples": 100}
    return Rule.model_validate(
        {"name": "drift", "source": "app", "window": "1h", "delay": "0s", "group_by": ["svc"], "drift": spec}
    )


def scores(store: EmbeddedStore, checked: Rule) -> dict[tuple[str, str], float]:
    findings = drift.evaluate(checked, store.evaluate(drift.queries(checked, AT)), AT)
    return {
        (finding.group["svc"], name): info["score"]
        for finding in findings
        for name, info in finding.details["features"].items()
    }


def test_bins_and_categories_are_the_raw_values_counts(data: tuple[EmbeddedStore, Any, pd.DataFrame]) -> None:
    store, profile, window = data
    checked = rule(profile, "psi", [COUNT, SCORE, COUNTRY])
    (result,) = store.evaluate(drift.queries(checked, AT)[:1])
    for group in result.groups:
        rows = window[window["svc"] == group.key["svc"]]
        for name in (COUNT, SCORE):
            feature = profile.features[name]
            assert isinstance(feature, NumericFeature)
            raw = bucket_counts(rows[name.split(".")[1]].to_numpy(), feature.edges)
            assert group.values[f"{name}/bins"] == raw
        on_edges = rows["count"].isin(profile.features[COUNT].edges).sum()
        assert on_edges > 100  # integers on the edges: the bin above, as numpy's side="right"
        counted = rows["country"].value_counts()
        for index, category in enumerate(profile.features[COUNTRY].categories):
            assert group.values[f"{COUNTRY}/category{index}"] == counted.get(category, 0)


# Recorded from the statement before DuckDB's histogram (one CAST(value >= edge) per edge, a
# GROUP BY per feature, a count_if per category). The counts must not move by one: a count off by
# one moves a score by far more than 1e-12, while summing in another order (plain floats instead of
# NumPy, 77332c5) moves it by an ulp or two.
BEFORE: dict[str, dict[tuple[str, str], float]] = {
    "psi": {
        ("a", "features.count"): 0.3030074541293133,
        ("a", "features.score"): 0.08031217427503014,
        ("a", "features.country"): 0.5865148346323555,
        ("b", "features.count"): 0.3343142631415011,
        ("b", "features.score"): 0.0778954090231852,
        ("b", "features.country"): 0.6821004111019682,
    },
    "js": {
        ("a", "features.count"): 0.23075554280807944,
        ("a", "features.score"): 0.12056918227800147,
        ("a", "features.country"): 0.2118035684198893,
        ("b", "features.count"): 0.24272029613580934,
        ("b", "features.score"): 0.11813727157207583,
        ("b", "features.country"): 0.2252512852465944,
    },
    "kl": {
        ("a", "features.count"): 0.15611243164917507,
        ("a", "features.score"): 0.0410048259267539,
        ("a", "features.country"): 0.49567407937240404,
        ("b", "features.count"): 0.16751206313189945,
        ("b", "features.score"): 0.039579752432237846,
        ("b", "features.country"): 0.5798508129302992,
    },
    "ks": {
        ("a", "features.count"): 0.21807260726072603,
        ("a", "features.score"): 0.1154018151815181,
        ("b", "features.count"): 0.24014225589225596,
        ("b", "features.score"): 0.11341161616161621,
    },
    "chi2": {
        ("a", "features.count"): 0.24770428065759834,
        ("a", "features.score"): 0.12866557514804763,
        ("a", "features.country"): 0.2534123512526986,
        ("b", "features.count"): 0.25517407988958973,
        ("b", "features.score"): 0.12504664892698136,
        ("b", "features.country"): 0.27066213788899035,
    },
}


@pytest.mark.parametrize("method", ["psi", "js", "kl", "ks", "chi2"])
def test_every_score_is_the_one_before(data: tuple[EmbeddedStore, Any, pd.DataFrame], method: str) -> None:
    store, profile, _ = data
    features = [COUNT, SCORE] if method == "ks" else [COUNT, SCORE, COUNTRY]
    scored = scores(store, rule(profile, method, features))
    assert scored == {key: pytest.approx(value, rel=1e-12, abs=0) for key, value in BEFORE[method].items()}


def test_grouped_bins_of_two_windows_in_one_statement(data: tuple[EmbeddedStore, Any, pd.DataFrame]) -> None:
    # A reference window is a second scope of the same grouped branch: each histogram counts its own.
    store, _, window = data
    edges = [10.0, 12.0, 14.0]
    spec = {"reference": {"offset": "30m"}, "features": [{"name": COUNT, "edges": edges}], "min_samples": 10}
    checked = Rule.model_validate(
        {"name": "drift", "source": "app", "window": "30m", "delay": "0s", "group_by": ["svc"], "drift": spec}
    )
    current, reference = store.evaluate(drift.queries(checked, AT))
    halves = {"current": window.iloc[len(window) // 2 :], "reference": window.iloc[: len(window) // 2]}
    for result, rows in ((current, halves["current"]), (reference, halves["reference"])):
        for group in result.groups:
            raw = rows[rows["svc"] == group.key["svc"]]["count"].to_numpy()
            assert group.values[f"{COUNT}/bins"] == bucket_counts(raw, edges)

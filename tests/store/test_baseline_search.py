"""``watcher baseline build --source`` on a search store (osmem-server): a feature mapped as a
keyword is profiled as categorical, as on the embedded store, instead of failing the whole build
because a number's statistics cannot be asked of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from watcher.baseline import CategoricalFeature, NumericFeature
from watcher.baseline_store import profile_from_store
from watcher.demo import DEMO_START, generate
from watcher.query import Window
from watcher.store.bulk import load_lines
from watcher.store.embedded import EmbeddedStore

BUILT = datetime(2026, 1, 6, tzinfo=UTC)
SPAN = timedelta(minutes=20)
FEATURES = ["features.age", "features.country"]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return [json.dumps(doc) for doc in generate(DEMO_START, SPAN, seed=5)]


def test_a_keyword_feature_is_profiled_as_categorical_as_on_the_embedded_store(
    lines, make_store, fresh_index, tmp_path
) -> None:
    index = fresh_index("baseline")
    store = make_store("opensearch", index)
    assert load_lines(store, lines, index).indexed == len(lines)
    embedded = EmbeddedStore(tmp_path / "logs.duckdb", time_field="@timestamp")
    embedded.ingest_lines(lines)
    window = Window(DEMO_START, DEMO_START + SPAN)
    profiles = [
        profile_from_store(each, source="s", window=window, features=FEATURES, built_at=BUILT)
        for each in (store, embedded)
    ]
    embedded.close()
    search, local = (profile.features for profile in profiles)
    assert isinstance(search["features.country"], CategoricalFeature)
    assert isinstance(search["features.age"], NumericFeature)
    assert search["features.country"] == local["features.country"]
    assert search["features.age"].edges == pytest.approx(local["features.age"].edges, rel=0.05)  # t-digest

"""Forecast and canary on the real search store (osmem-server) tell what they tell on the embedded
store (DuckDB): the same findings from the same log, with the forecast's one bucketed query and the
canary's one grouped query (its histogram, terms and first-seen times included)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.detect import test_canary as canary_case
from tests.detect import test_forecast as forecast_case
from watcher.config import SearchSource
from watcher.detect import DETECTORS
from watcher.detect.base import Finding
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.bulk import load_lines
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore

LINES = [*forecast_case.climb_lines(), *canary_case.LINES]
LOGS = {"source": "logs", "delay": "0s"}
CASES: list[tuple[dict[str, Any], Any]] = [
    (
        {"window": "10m", "signal": forecast_case.THROTTLED, "forecast": {"above": 0.8, "history": "6h"}},
        forecast_case.CLIMB_END,
    ),
    (
        {"window": "10m", "signal": {"ratio": {"of": {"status": 200}}}, "group_by": ["tenant"],
         "forecast": {"below": 0.2, "history": "3h"}},
        forecast_case.CLIMB_END - timedelta(hours=1),
    ),
    (
        {"window": "10m", "group_by": ["tenant"], "signal": canary_case.ERRORS,
         "canary": {**canary_case.VERSIONS, "candidate": "newest", "margin": 0.01}},
        canary_case.AT,
    ),
    (
        {"window": "10m", "group_by": ["tenant"], "signal": {"stat": {"field": "latency_ms", "fn": "avg"}},
         "canary": {**canary_case.VERSIONS, "margin": 0.1, "min_samples": 40}},
        canary_case.AT,
    ),
    (
        {"window": "10m", "group_by": ["tenant"],
         "canary": {**canary_case.VERSIONS, "feature": {"name": "country", "type": "categorical"}}},
        canary_case.AT,
    ),
]  # fmt: skip


def _findings(store: LogStore) -> list[list[Finding]]:
    out = []
    for number, (spec, at) in enumerate(CASES):
        rule = Rule.model_validate({"name": f"r{number}", **LOGS, **spec})
        detector = DETECTORS[rule.detector]
        out.append(sorted(detector.evaluate(rule, store.evaluate(detector.queries(rule, at)), at), key=repr))
    return out


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path_factory.mktemp("trends") / "logs.duckdb")
    assert store.ingest_lines(LINES).skipped_total == 0
    yield store
    store.close()


@pytest.fixture(scope="module")
def index(search_server: Any) -> Iterator[str]:
    name = f"watcher-trends-{uuid.uuid4().hex[:6]}"
    source = SearchSource.model_validate({"store": "opensearch", "hosts": [search_server.url], "index": name})
    loader = SearchStore(source)
    assert load_lines(loader, LINES, name).indexed == len(LINES)
    loader.close()
    yield name
    search_server.delete_index(name)


def _same(left: Any, right: Any) -> bool:
    """Equal, floats to 1e-9 relative (sums and averages are added up in another order)."""
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def test_the_search_store_gives_the_same_findings(
    embedded: EmbeddedStore, index: str, make_store: Any, client: str
) -> None:
    expected, got = _findings(embedded), _findings(make_store(client, index))
    statuses = [[finding.status.value for finding in findings] for findings in expected]
    assert statuses == [
        ["alerting"],
        ["ok"],
        ["ok", "no_data", "alerting"],  # tenants equal, small, worse
        ["ok", "alerting", "alerting"],
        ["ok", "no_data", "alerting"],
    ]
    for case, (mine, theirs) in enumerate(zip(expected, got, strict=True)):
        assert len(mine) == len(theirs), case
        for left, right in zip(mine, theirs, strict=True):
            assert (left.group, left.status) == (right.group, right.status), case
            assert _same(left.value, right.value), (case, left.value, right.value)
            assert _same(dict(left.details), dict(right.details)), (case, left.details, right.details)

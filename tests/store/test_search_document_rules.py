"""The document-level detectors (``match``, ``values``, ``new_value``, ``change``) on a fixed log,
on the real embedded store (DuckDB) and on the real search store (osmem-server): the findings a
reader of the log expects, written by hand, and the same findings on both stores."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import SearchSource
from watcher.detect import DETECTORS
from watcher.detect.base import Finding, Status
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.bulk import load_lines
from watcher.store.embedded import EmbeddedStore
from watcher.store.search import SearchStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
AT = T0 + timedelta(minutes=60)  # every rule: a 10m window, no delay: [00:50, 01:00)
DOCS = [
    (5, "a", "u1", "/a", 200), (20, "a", "u2", "/a", 200), (30, "b", "u1", "/b", 500),
    (40, "evil", "u9", "/a", 200), (51, "a", "u1", "/a", 503), (52, "a", "u3", "/x", 200),
    (53, "evil", "u9", "/a", 200), (55, "b", "u1", "/a", 500), (57, "b", "u4", "/b", 200),
    (58, "evil", "u9", "/a", 200), (35, "c", "u5", "/a", 200), (53.5, "c", "u5", "/b", 200),
    (54.5, "c", "u5", "/a", 200), (56, "a", "u1", None, 200),
]  # fmt: skip
LINES = [
    json.dumps({"@timestamp": (T0 + timedelta(minutes=m)).isoformat(), "tenant": t, "user": u, "route": r,
                "status": s})
    for m, t, u, r, s in DOCS
]  # fmt: skip
RULES = {
    "5xx": {"where": {"status": {"gte": 500}}, "group_by": ["tenant"], "match": {}},
    "blocked": {"values": {"field": "tenant", "deny": {"file": "blocked.txt"}}},
    "routes": {"group_by": ["tenant"], "values": {"field": "route", "allow": ["/a", "/b"]}},
    "routes-strict": {
        "group_by": ["tenant"],
        "values": {"field": "route", "allow": ["/a", "/b"], "missing": "alert"},
    },
    "new-user": {"new_value": {"fields": ["user"], "lookback": "1h"}},
    "route-change": {"change": {"field": "route", "by": ["user"], "lookback": "1h"}},
}
EXPECTED = {
    "5xx": [
        ({"tenant": "a"}, Status.ALERTING, 1, "1 matching document in 10m"),
        ({"tenant": "b"}, Status.ALERTING, 1, "1 matching document in 10m"),
    ],
    "blocked": [({}, Status.ALERTING, 2, '2 documents with a denied tenant: "evil" (2)')],
    "routes": [({"tenant": "a"}, Status.ALERTING, 1, '1 document with a route not allowed: "/x" (1)')],
    "routes-strict": [
        ({"tenant": "a"}, Status.ALERTING, 2,
         '2 documents with a route not allowed: "/x" (1); 1 without route'),
    ],
    "new-user": [
        ({}, Status.ALERTING, 2, 'new user (unseen in the 1h before): "u3" (1, first seen 2026-03-01 '
         '00:52:00 UTC), "u4" (1, first seen 2026-03-01 00:57:00 UTC)'),
    ],
    "route-change": [
        ({"user": "u1"}, Status.ALERTING, 1, 'route changed from "/b" to "/a" at 00:51:00'),
        ({"user": "u2"}, Status.OK, 0, "no route in the window"),
        ({"user": "u3"}, Status.OK, 0, "route unchanged"),
        ({"user": "u4"}, Status.OK, 0, "route unchanged"),
        ({"user": "u5"}, Status.ALERTING, 2,
         'route changed from "/a" to "/b" at 00:53:30 → "/a" at 00:54:30'),  # and back: two changes
        ({"user": "u9"}, Status.OK, 0, "route unchanged"),
    ],
}  # fmt: skip


def _rules(folder: Path) -> list[Rule]:
    (folder / "blocked.txt").write_text("# tenants that must not call us\nevil\nmallory\n")
    context = {"base_dir": folder}
    return [
        Rule.model_validate(
            {"name": name, "source": "logs", "window": "10m", "delay": "0s", **spec}, context=context
        )
        for name, spec in RULES.items()
    ]


def _findings(store: LogStore, rules: list[Rule]) -> dict[str, list[Finding]]:
    out = {}
    for rule in rules:
        detector = DETECTORS[rule.detector]
        out[rule.name] = detector.evaluate(rule, store.evaluate(detector.queries(rule, AT)), AT)
    return out


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[Rule]:
    return _rules(tmp_path_factory.mktemp("lists"))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    store = EmbeddedStore(tmp_path_factory.mktemp("document-rules") / "logs.duckdb")
    assert store.ingest_lines(LINES).skipped_total == 0
    yield store
    store.close()


@pytest.fixture(scope="module")
def index(search_server):
    name = f"watcher-doc-rules-{uuid.uuid4().hex[:6]}"
    source = SearchSource.model_validate({"store": "opensearch", "hosts": [search_server.url], "index": name})
    loader = SearchStore(source)
    assert load_lines(loader, LINES, name).indexed == len(LINES)
    loader.close()
    yield name
    search_server.delete_index(name)


def _summary(findings: list[Finding]) -> list[tuple[dict[str, str], Status, float | None, str]]:
    return sorted(
        ((dict(f.group), f.status, f.value, f.reason) for f in findings), key=lambda f: sorted(f[0].items())
    )


def test_the_embedded_store_fires_where_the_log_says(embedded: EmbeddedStore, rules: list[Rule]) -> None:
    found = _findings(embedded, rules)
    assert {name: _summary(findings) for name, findings in found.items()} == EXPECTED
    (new,) = found["new-user"]
    assert new.details["new_values"][0] == {
        "value": {"user": "u3"},
        "first_seen": "2026-03-01T00:52:00+00:00",
        "last_seen": "2026-03-01T00:52:00+00:00",
        "count": 1,
    }


def test_the_search_store_gives_the_same_findings(embedded, rules, index, make_store, client) -> None:
    search = make_store(client, index)
    expected, got = _findings(embedded, rules), _findings(search, rules)
    for name in RULES:
        assert sorted(got[name], key=repr) == sorted(expected[name], key=repr), name

"""Discover links: the rule's query in KQL, the alerting windows as the time range, rison in the URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from samples import incident

from watcher.config import EmbeddedSource, SearchSource
from watcher.notify.links import discover_url, incident_links, rule_query
from watcher.rules.models import Rule

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def rule(**fields: Any) -> Rule:
    spec = {"name": "r", "source": "ml", "threshold": {"above": 1}, "window": "5m", "delay": "30s", **fields}
    return Rule.model_validate(spec)


def source(**fields: Any) -> SearchSource:
    spec = {"store": "elasticsearch", "hosts": ["https://es:9200"], "index": "ml-*", **fields}
    return SearchSource.model_validate(spec)


@pytest.mark.parametrize(
    ("fields", "group", "expected"),
    [
        ({}, {}, ""),
        ({"where": {"service": "prediction-api"}}, {}, 'service:"prediction-api"'),
        (
            {"where": {"service": "prediction-api"}, "signal": {"ratio": {"of": {"status": {"gte": 500}}}}},
            {"model_version": "v3"},
            'service:"prediction-api" and status >= 500 and model_version:"v3"',
        ),
        ({"where": {"status": [429, 503]}}, {}, "status:(429 or 503)"),
        (
            {"where": {"latency_ms": {"gte": 100, "lt": 250.5}}},
            {},
            "latency_ms >= 100 and latency_ms < 250.5",
        ),
        (
            {"where": {"or": [{"a": 1}, {"b": {"exists": True}}], "c": {"ne": "x"}}},
            {},
            '(a:1 or b:*) and not c:"x"',
        ),
        ({"where": {"flag": True}}, {"team name": 'say "hi"'}, 'flag:true and team\\ name:"say \\"hi\\""'),
    ],
)
def test_rule_query_is_kql(fields: dict[str, Any], group: dict[str, str], expected: str) -> None:
    assert rule_query(rule(**fields), group) == expected


def test_discover_url_encodes_time_query_and_data_view_in_rison() -> None:
    url = discover_url(
        source(dashboards_url="https://kibana.example.com/", dashboards_data_view="ml-logs"),
        'service:"api" and note:"it\'s!"',
        T0,
        T0 + timedelta(minutes=7),
    )
    assert url.startswith(
        "https://kibana.example.com/app/discover#/?_g=(time:(from:'2026-01-05T09:00:00.000Z',"
    )
    assert unquote(url) == (
        "https://kibana.example.com/app/discover#/?_g=(time:(from:'2026-01-05T09:00:00.000Z',"
        "to:'2026-01-05T09:07:00.000Z'))&_a=(index:'ml-logs',query:(language:kuery,"
        'query:\'service:"api" and note:"it!\'s!!"\'))'
    )
    assert " " not in url
    assert '"' not in url


def test_incident_links_cover_the_alerting_windows() -> None:
    r = rule(where={"service": "api"})
    firing = incident(started_at=T0, fired_at=T0 + timedelta(minutes=2), group={"model_version": "v3"})
    [(name, url)] = incident_links(
        r, source(dashboards_url="https://k"), firing, T0 + timedelta(minutes=2)
    ).items()
    assert name == "dashboards"
    assert "from:'2026-01-05T08:54:30.000Z',to:'2026-01-05T09:01:30.000Z'" in url
    assert unquote(url).endswith('query:\'service:"api" and model_version:"v3"\'))')


def test_no_links_without_a_dashboards_url() -> None:
    firing = incident(started_at=T0)
    assert incident_links(rule(), source(), firing, T0) == {}
    assert incident_links(rule(), EmbeddedSource(store="embedded"), firing, T0) == {}
    assert incident_links(rule(), None, firing, T0) == {}

"""The tick's ``_msearch`` through the search client: a 429 is retried, a read timeout is told
as a timeout (not as an unreachable store), a dead host is skipped after its first failure, and a
connection class of the user's own (``client_options``) sees every request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opensearchpy.connection import Urllib3HttpConnection

from tests.store.conftest import PlainJsonNode
from watcher.query import Count, Query, Window
from watcher.store.base import StoreError

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
COUNT = Query("count", Window(T0, T0 + timedelta(minutes=5)), {"n": Count()})
SEEN: list[str] = []


class OwnConnection(Urllib3HttpConnection):
    """A user's opensearch-py connection class that overrides ``perform_request``."""

    def perform_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        SEEN.append(url)
        return super().perform_request(method, url, *args, **kwargs)


class OwnNode(PlainJsonNode):
    """A user's elasticsearch-py node class that overrides ``perform_request``."""

    def perform_request(self, method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        SEEN.append(target)
        return super().perform_request(method, target, *args, **kwargs)


def own_class(client: str) -> dict[str, Any]:
    """Client options with a connection (opensearch-py) or node (elasticsearch-py) class of the user's own."""
    return {"connection_class": OwnConnection} if client == "opensearch" else {"node_class": OwnNode}


@pytest.fixture(scope="module")
def index(one_document_index: str) -> str:
    return one_document_index


def outcome(store) -> str:
    try:
        (result,) = store.evaluate([COUNT])
    except StoreError as exc:
        return f"StoreError: {exc}"
    return result.error or f"answer {result.groups[0].values}"


def test_a_429_on_the_msearch_is_retried(search_server, fault_proxy, make_store, client, index):
    proxy = fault_proxy(search_server.url)
    delays: list[float] = []
    store = make_store(client, index, url=proxy.url, max_retries=2, sleep=delays.append)
    assert outcome(store) == "answer {'n': 1}"
    proxy.faults.append(("status", 429))
    trips = store.round_trips
    assert outcome(store) == "answer {'n': 1}"
    assert store.round_trips - trips == 2
    assert len(delays) == 1


def test_a_read_timeout_is_a_timeout_not_an_unreachable_store(
    search_server, fault_proxy, make_store, client, index
):
    proxy = fault_proxy(search_server.url)
    store = make_store(client, index, url=proxy.url, timeout="300ms", max_retries=3, sleep=lambda _: None)
    assert outcome(store) == "answer {'n': 1}"
    proxy.faults.append(("hang", 1.5))
    trips = store.round_trips
    assert outcome(store) == "the store did not answer within 0.3s"
    assert store.round_trips - trips == 1


def test_a_dead_host_is_skipped_after_its_first_failure(
    search_server, fault_proxy, make_store, client, index
):
    dying = fault_proxy(search_server.url)
    alive = fault_proxy(search_server.url)
    store = make_store(client, index, hosts=[dying.url, alive.url], max_retries=1, sleep=lambda _: None)
    assert outcome(store) == "answer {'n': 1}"
    dying.close()  # connection refused from now on
    trips = store.round_trips
    assert [outcome(store) for _ in range(6)] == ["answer {'n': 1}"] * 6
    assert store.round_trips - trips == 7  # six _msearch, one of them retried on the live host


def test_a_connection_class_of_the_users_own_sees_every_msearch(search_server, make_store, client, index):
    store = make_store(client, index, client_options=own_class(client))
    SEEN.clear()
    assert [outcome(store) for _ in range(3)] == ["answer {'n': 1}"] * 3
    assert [target.split("?")[0] for target in SEEN] == [f"/{index}/_field_caps"] + [f"/{index}/_msearch"] * 3

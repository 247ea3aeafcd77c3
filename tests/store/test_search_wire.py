"""The tick's ``_msearch`` on kept-alive connections (``watcher.store.search_wire``): a
connection the server closed while idle is opened again at once, without a retry, its backoff
and its warning, but only once; credentials given in a host's URL reach the server."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta

import pytest

from watcher.query import Count, Query, Window
from watcher.store.search_wire import Host

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
COUNT = Query("count", Window(T0, T0 + timedelta(minutes=5)), {"n": Count()})


@pytest.fixture(scope="module")
def index(one_document_index: str) -> str:
    return one_document_index


def msearches(proxy) -> int:
    return sum(path.split("?")[0].endswith("/_msearch") for _, path, _ in proxy.seen)


def test_a_connection_closed_while_idle_is_opened_again_without_a_retry(
    search_server, fault_proxy, make_store, index, caplog
):
    proxy = fault_proxy(search_server.url, keep_alive=True)
    delays: list[float] = []
    store = make_store("opensearch", index, url=proxy.url, max_retries=2, sleep=delays.append)
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    proxy.faults.append(("drop", 0))  # the kept connection is closed as the next request arrives
    trips, sent = store.round_trips, msearches(proxy)
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    assert (store.round_trips - trips, msearches(proxy) - sent) == (1, 2)
    assert delays == []
    assert "retry" not in caplog.text


def test_a_new_connection_closed_without_an_answer_is_a_retry(search_server, fault_proxy, make_store, index):
    proxy = fault_proxy(search_server.url, keep_alive=True)
    delays: list[float] = []
    store = make_store("opensearch", index, url=proxy.url, max_retries=2, sleep=delays.append)
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    proxy.faults += [("drop", 0), ("drop", 0)]  # the kept one, then the one opened again
    trips, sent = store.round_trips, msearches(proxy)
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    assert (store.round_trips - trips, msearches(proxy) - sent) == (2, 3)
    assert len(delays) == 1


def test_credentials_in_a_host_url_are_sent(search_server, fault_proxy, make_store, client, index):
    proxy = fault_proxy(search_server.url)
    url = proxy.url.replace("http://", "http://watcher:s%40cret@")
    store = make_store(client, index, url=url)
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    basic = "Basic " + base64.b64encode(b"watcher:s@cret").decode()
    assert [(path.split("?")[0], headers.get("authorization")) for _, path, headers in proxy.seen] == [
        (f"/{index}/_field_caps", basic),
        (f"/{index}/_msearch", basic),
    ]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:9200", Host(False, "127.0.0.1", 9200, "", None)),
        ("localhost:9201", Host(False, "localhost", 9201, "", None)),
        ("https://search.example.com", Host(True, "search.example.com", 443, "", None)),
        ("http://search.example.com/", Host(False, "search.example.com", 9200, "", None)),
        ("https://u:p%40w@gw.example.com:8443/es/", Host(True, "gw.example.com", 8443, "/es", ("u", "p@w"))),
        ("http://[::1]:9200", Host(False, "::1", 9200, "", None)),
    ],
)
def test_hosts_are_read_as_the_clients_read_them(url, host):
    assert Host.parse(url) == host

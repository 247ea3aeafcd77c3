"""What a user sees when the search store cannot answer: a ``StoreError`` when nothing can be
answered, a per-query error with the store's message otherwise -- never "no data" -- and a clear
log line each time."""

from __future__ import annotations

import logging
import signal
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from watcher.query import Count, CountWhere, Percentiles, Query, Stats, Window
from watcher.query_filters import Eq, Range
from watcher.store.base import StoreError

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=5))
PROPERTIES = {
    "@timestamp": {"type": "date"},
    "service": {"type": "keyword"},
    "status": {"type": "integer"},
    "latency_ms": {"type": "double"},
    "message": {"type": "text"},
    "when_text": {"type": "keyword"},
}
DOCS = [
    {
        "@timestamp": "2026-01-05T08:00:10Z",
        "service": "api",
        "status": 200,
        "latency_ms": 12.5,
        "message": "hi",
    },
    {
        "@timestamp": "2026-01-05T08:01:10Z",
        "service": "api",
        "status": 503,
        "latency_ms": 40.0,
        "message": "oh",
    },
]
COUNT = Query("count", WINDOW, {"n": Count()})


@pytest.fixture(scope="module")
def index(search_server):
    name = f"watcher-err-{uuid.uuid4().hex[:8]}"
    search_server.create_index(name, PROPERTIES, DOCS)
    yield name
    search_server.delete_index(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_down_at_start_is_a_store_error_after_bounded_retries(make_store, client, caplog):
    port = free_port()
    delays: list[float] = []
    store = make_store(client, "logs-*", url=f"http://127.0.0.1:{port}", max_retries=2, sleep=delays.append)
    with (
        caplog.at_level(logging.WARNING, logger="watcher.store.search"),
        pytest.raises(StoreError) as failure,
    ):
        store.evaluate([COUNT])
    address = f"http://127.0.0.1:{port}"
    assert str(failure.value) == (
        f"cannot reach {client} at {address} (index logs-*): connection refused (after 2 retries)"
    )
    assert len(delays) == 2
    assert 0.25 <= delays[0] <= 0.5
    assert 0.5 <= delays[1] <= 1.0
    assert "_field_caps on" in caplog.text
    assert "retry 2 of 2" in caplog.text
    assert caplog.records[-1].levelno == logging.ERROR
    assert caplog.records[-1].getMessage() == str(failure.value)


def test_server_killed_mid_run(private_server, make_store, client, caplog):
    name = "watcher-killed"
    private_server.create_index(name, PROPERTIES, DOCS)
    store = make_store(client, name, server=private_server)
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 2}
    private_server.process.send_signal(signal.SIGKILL)
    private_server.process.wait()
    with caplog.at_level(logging.ERROR, logger="watcher.store.search"), pytest.raises(StoreError) as failure:
        store.evaluate([COUNT])
    assert str(failure.value).startswith(f"cannot reach {client} at {private_server.url} (index {name}): ")
    assert "after 0 retries" in str(failure.value)
    assert str(failure.value) in caplog.text


@pytest.mark.parametrize("pattern", ["watcher-nothing-here", "watcher-nothing-*"])
def test_an_index_that_does_not_exist_is_an_error_for_each_query(make_store, client, pattern, caplog):
    store = make_store(client, pattern)
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        results = store.evaluate([COUNT, Query("other", WINDOW, {"n": Count()})])
    assert [r.error for r in results] == [f"index pattern {pattern!r} matches no index"] * 2
    assert [r.groups for r in results] == [(), ()]
    [line] = [r.getMessage() for r in caplog.records if r.name == "watcher.store.search"]
    assert line.startswith(f"2 queries on {client} at ")
    assert line.endswith(
        f"(index {pattern}) failed (count, other): index pattern {pattern!r} matches no index"
    )


def test_an_unmapped_field_fails_only_its_query(make_store, client, index, caplog):
    store = make_store(client, index)
    queries = [
        COUNT,
        Query("p99", WINDOW, {"n": Count(), "v": Percentiles("latency_msec", (99.0,))}),
        Query("where", WINDOW, {"n": Count()}, Eq("servce", "api")),
        Query("group", WINDOW, {"n": Count()}, group_by=("model_version",)),
    ]
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        results = store.evaluate(queries)
    assert results[0].groups[0].values == {"n": 2}
    assert [r.error for r in results[1:]] == [
        f"field 'latency_msec' is not mapped in index {index!r}",
        f"field 'servce' is not mapped in index {index!r}",
        f"field 'model_version' is not mapped in index {index!r}",
    ]
    assert f"query p99 on {client} at" in caplog.text


def test_fields_mapped_with_unusable_types(make_store, client, index):
    store = make_store(client, index)
    results = store.evaluate(
        [
            Query("stats", WINDOW, {"v": Stats("service")}),
            Query("text", WINDOW, {"n": Count()}, Eq("message", "hi")),
            Query("range", WINDOW, {"v": CountWhere(Range("when_text", gte=1))}),
        ]
    )
    assert [r.error for r in results] == [
        f"field 'service' is mapped as keyword in index {index!r}, not as a number",
        f"field 'message' is analysed text in index {index!r} with no keyword sub-field: "
        "it cannot be matched exactly, grouped or counted",
        f"field 'when_text' is mapped as keyword in index {index!r}, not as a number",
    ]


def test_time_field_must_be_a_date(make_store, client, index):
    store = make_store(client, index, time_field="service")
    (result,) = store.evaluate([COUNT])
    assert result.error == f"time field 'service' is mapped as keyword in index {index!r}, not as a date"
    store = make_store(client, index, time_field="ts")
    (result,) = store.evaluate([COUNT])
    assert result.error == f"time field 'ts' is not mapped in index {index!r}"


def test_a_window_without_time_zone_is_refused(make_store, client, index):
    store = make_store(client, index)
    naive = Window(datetime(2026, 1, 5, 8, 0), datetime(2026, 1, 5, 8, 5))
    (result,) = store.evaluate([Query("naive", naive, {"n": Count()})])
    assert result.error == "window bound 2026-01-05T08:00:00 has no time zone; watcher uses UTC datetimes"


def test_a_timeout_fails_the_queries_of_that_request_without_retrying(
    search_server, fault_proxy, make_store, client, index, caplog
):
    proxy = fault_proxy(search_server.url)
    delays: list[float] = []
    store = make_store(client, index, url=proxy.url, timeout="300ms", max_retries=3, sleep=delays.append)
    fused = [COUNT, Query("p", WINDOW, {"p": Percentiles("latency_ms", (50.0,))})]
    queries = [*fused, Query("api", WINDOW, {"n": Count()}, Eq("service", "api"))]
    store.evaluate(queries)  # warms the mapping cache
    proxy.faults.append(("hang", 1.5))
    before = store.round_trips
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        results = store.evaluate(queries)
    assert [r.error for r in results] == ["the store did not answer within 0.3s"] * 3
    assert store.round_trips - before == 1  # neither retried nor split into single searches
    assert delays == []
    assert (
        f"_msearch of 2 searches on {client} at {proxy.url} (index {index}): the store did not answer"
        in caplog.text
    )
    # the next tick works again
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 2}


def test_429_and_503_are_retried_with_backoff(search_server, fault_proxy, make_store, client, index, caplog):
    proxy = fault_proxy(search_server.url)
    proxy.faults += [("status", 503), ("status", 429)]
    delays: list[float] = []
    store = make_store(client, index, url=proxy.url, max_retries=2, sleep=delays.append)
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        (result,) = store.evaluate([COUNT])
    assert result.groups[0].values == {"n": 2}
    assert len(delays) == 2
    assert "retry 1 of 2" in caplog.text
    assert "retry 2 of 2" in caplog.text
    assert store.round_trips == 4  # field caps x3, _msearch x1


def test_retries_are_bounded(search_server, fault_proxy, make_store, client, index):
    proxy = fault_proxy(search_server.url)
    store = make_store(client, index, url=proxy.url, max_retries=1, sleep=lambda _: None)
    store.evaluate([COUNT])
    proxy.faults += [("status", 503)] * 2
    (result,) = store.evaluate([COUNT])
    assert result.error == "the store rejected the request: injected: injected fault"
    assert store.round_trips == 2 + 2


def test_refused_credentials_are_a_store_error(search_server, fault_proxy, make_store, client, index):
    proxy = fault_proxy(search_server.url)
    proxy.faults.append(("status", 401))
    store = make_store(client, index, url=proxy.url, api_key="not-valid")
    with pytest.raises(StoreError) as failure:
        store.evaluate([COUNT])
    assert str(failure.value) == (
        f"{client} at {proxy.url} (index {index}) refused the credentials (401): injected: injected fault"
    )
    assert "not-valid" not in str(failure.value)


def test_mapping_is_cached_and_a_new_field_is_seen_within_a_minute(
    search_server, make_store, client, fresh_index
):
    name = fresh_index("watcher-cache")
    search_server.create_index(name, PROPERTIES, DOCS)
    now = [1000.0]
    store = make_store(client, name, clock=lambda: now[0])
    by_region = Query("region", WINDOW, {"n": Count()}, Eq("region", "eu"))
    assert store.evaluate([COUNT, by_region])[1].error == f"field 'region' is not mapped in index {name!r}"
    assert store.round_trips == 2
    search_server.request("PUT", f"/{name}/_mapping", {"properties": {"region": {"type": "keyword"}}})
    search_server.request(
        "POST", f"/{name}/_doc?refresh=true", {"@timestamp": "2026-01-05T08:02:00Z", "region": "eu"}
    )
    now[0] += 30
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 3}
    assert store.round_trips == 3  # mapping from the cache: one _msearch
    assert store.evaluate([by_region])[0].error == f"field 'region' is not mapped in index {name!r}"
    now[0] += 31  # an unmapped field is looked up again after a minute
    assert store.evaluate([by_region])[0].groups[0].values == {"n": 1}

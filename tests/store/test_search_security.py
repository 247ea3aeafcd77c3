"""Credentials and TLS: each kind of credentials reaches the server as the right header, TLS is
verified by default against a CA bundle, client certificates work, turning verification off is
logged, and secrets never show in errors or logs. A TLS-terminating proxy on 127.0.0.1 sits in
front of the real server."""

from __future__ import annotations

import base64
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from watcher.config import SearchSource
from watcher.query import Count, Query, Window
from watcher.store.base import StoreError
from watcher.store.search import SearchStore

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
COUNT = Query("count", Window(T0, T0 + timedelta(minutes=5)), {"n": Count()})


@pytest.fixture(scope="module")
def index(one_document_index: str) -> str:
    return one_document_index


@pytest.mark.parametrize(
    ("settings", "header"),
    [
        ({"api_key": "a2V5OnNlY3JldA=="}, "ApiKey a2V5OnNlY3JldA=="),
        ({"bearer_token": "tok-123"}, "Bearer tok-123"),
        (
            {"username": "watcher", "password": "s3cret"},
            "Basic " + base64.b64encode(b"watcher:s3cret").decode(),
        ),
    ],
)
def test_credentials_are_sent_on_every_request(
    search_server, fault_proxy, make_store, client, index, settings, header, caplog
):
    proxy = fault_proxy(search_server.url)
    store = make_store(client, index, url=proxy.url, **settings)
    with caplog.at_level(logging.DEBUG):
        assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    assert [headers.get("authorization") for _, _, headers in proxy.seen] == [header, header]
    secret = (
        next(iter(settings.values())) if "api_key" in settings or "bearer_token" in settings else "s3cret"
    )
    assert secret not in caplog.text
    assert secret not in repr(store.source)


def test_tls_is_verified_against_the_ca_bundle(
    search_server, fault_proxy, tls_context, tls_files, make_store, client, index
):
    proxy = fault_proxy(search_server.url, tls=tls_context())
    store = make_store(client, index, url=proxy.url, ca_certs=tls_files["ca.pem"])
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}


def test_tls_verification_is_on_by_default(
    search_server, fault_proxy, tls_context, tls_files, make_store, client, index
):
    proxy = fault_proxy(search_server.url, tls=tls_context())
    store = make_store(client, index, url=proxy.url, ca_certs=tls_files["other-ca.pem"])
    with pytest.raises(StoreError) as failure:
        store.evaluate([COUNT])
    assert str(failure.value).startswith(f"cannot reach {client} at {proxy.url} (index {index}): ")
    assert "TLS certificate verify failed: unable to get local issuer certificate" in str(failure.value)


def test_turning_verification_off_works_and_is_logged(
    search_server, fault_proxy, tls_context, make_store, client, index, caplog
):
    proxy = fault_proxy(search_server.url, tls=tls_context())
    with caplog.at_level(logging.WARNING, logger="watcher.store.search"):
        store = make_store(client, index, url=proxy.url, verify_certs=False)
    assert (
        f"TLS certificate verification is off for {proxy.url}: the connection can be intercepted"
        in caplog.text
    )
    assert store.evaluate([COUNT])[0].groups[0].values == {"n": 1}


def test_client_certificate(search_server, fault_proxy, tls_context, tls_files, make_store, client, index):
    proxy = fault_proxy(search_server.url, tls=tls_context(require_client_cert=True))
    with_cert = make_store(
        client,
        index,
        url=proxy.url,
        ca_certs=tls_files["ca.pem"],
        client_cert=tls_files["client.pem"],
        client_key=tls_files["client.key"],
    )
    assert with_cert.evaluate([COUNT])[0].groups[0].values == {"n": 1}
    without = make_store(client, index, url=proxy.url, ca_certs=tls_files["ca.pem"])
    with pytest.raises(StoreError, match=f"cannot reach {client} at {proxy.url}"):
        without.evaluate([COUNT])


def _source(**settings: object) -> SearchSource:
    return SearchSource.model_validate(
        {"store": "opensearch", "hosts": ["https://127.0.0.1:9200"], "index": "x", **settings}
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"api_key": "k", "bearer_token": "t"},
            "a search source takes one kind of credentials, got api_key and bearer_token",
        ),
        ({"username": "u"}, "basic auth needs both 'username' and 'password'"),
        ({"ca_certs": "/nonexistent/ca.pem"}, "ca_certs file /nonexistent/ca.pem does not exist"),
        (
            {"hosts": ["http://127.0.0.1:9200"], "ca_certs": "/etc/ca.pem"},
            "ca_certs need https:// hosts, got http://127.0.0.1:9200",
        ),
    ],
)
def test_bad_security_settings_are_refused_with_a_clear_message(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)) as failure:
        SearchStore(_source(**settings))
    assert str(failure.value) == message


def test_credentials_in_host_urls_never_show(caplog):
    store = SearchStore(_source(hosts=["https://admin:hunter2@127.0.0.1:1"], max_retries=0))
    with pytest.raises(StoreError) as failure:
        store.evaluate([COUNT])
    assert "hunter2" not in str(failure.value)
    assert "https://127.0.0.1:1" in str(failure.value)
    assert "hunter2" not in caplog.text


def test_certificate_files_openssl_cannot_read_are_refused_with_their_names(tmp_path, tls_files):
    """Refused when the store is opened (at start, or a reload that logs it), not as an unreachable
    store at every tick."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    bundle = f"ca_certs file {garbage} holds no certificate OpenSSL can read ("
    with pytest.raises(ValueError, match=re.escape(bundle)):
        SearchStore(_source(ca_certs=str(garbage)))
    cert, wrong_key = tls_files["client.pem"], tls_files["server.key"]
    pair = f"client_cert {cert} with client_key {wrong_key}: not a certificate and its key ("
    with pytest.raises(ValueError, match=re.escape(pair)) as failure:
        SearchStore(_source(client_cert=str(cert), client_key=str(wrong_key)))
    assert str(failure.value).startswith(pair)
    assert "_ssl.c" not in str(failure.value)

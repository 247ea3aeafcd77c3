"""SmsNotifier against Twilio's REST API, answered by ``responses`` (the only HTTP double we use)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from samples import NOW, RULE, incident, notification, resolved

from watcher.config import SmsReceiver
from watcher.incidents.model import Event
from watcher.notify.base import Delivery
from watcher.notify.segments import segments
from watcher.notify.sms import SmsNotifier
from watcher.templates import Templates

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-0123456789"
URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"


def notifier(**settings: Any) -> SmsNotifier:
    values: dict[str, Any] = {
        "to": ["+15550100"],
        "from": "+15550199",
        "account_sid": SID,
        "auth_token": TOKEN,
        **settings,
    }
    return SmsNotifier(SmsReceiver.model_validate(values), Templates(rules=[RULE]), clock=lambda: NOW)


def created(to: str = "+15550100") -> dict[str, Any]:
    return {"sid": "SM0001", "status": "queued", "to": to}


def form(call: Any) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(call.request.body).items()}


@responses.activate
def test_firing_sends_one_short_text_per_number_with_basic_auth() -> None:
    responses.post(URL, json=created(), status=201)
    sms = notifier(to=["+15550100", "+447700900123"])

    assert sms.send(notification()) == Delivery(ok=True)

    first, second = responses.calls
    assert first.request.headers["Authorization"] == requests.auth._basic_auth_str(SID, TOKEN)
    assert form(first) == {
        "To": "+15550100",
        "From": "+15550199",
        "Body": "CRITICAL prediction-5xx: 5xx rate 7.12% for model v2 (threshold 5%) "
        "https://runbooks.example.com/5xx",
    }
    assert form(second)["To"] == "+447700900123"


@responses.activate
def test_a_messaging_service_replaces_the_sender_number() -> None:
    responses.post(URL, json=created(), status=201)
    assert notifier(**{"from": None, "messaging_service_sid": "MG123"}).send(notification()).ok
    assert form(responses.calls[0])["MessagingServiceSid"] == "MG123"
    assert "From" not in form(responses.calls[0])


@responses.activate
def test_resolved_and_update_texts() -> None:
    responses.post(URL, json=created(), status=201)
    sms = notifier()
    assert sms.send(notification(Event.RESOLVED, resolved())).ok
    assert sms.send(notification(Event.UPDATE, id="n2")).ok
    assert [form(call)["Body"] for call in responses.calls] == [
        "RESOLVED prediction-5xx (model_version=v2) after 10m",
        "STILL FIRING prediction-5xx for 12m: 5xx rate 7.12% for model v2",
    ]


@responses.activate
def test_long_texts_are_cut_to_the_configured_segments_with_a_marker() -> None:
    responses.post(URL, json=created(), status=201)
    long = incident(annotations={"summary": "word " * 200})
    assert notifier(max_segments=1).send(notification(Event.FIRING, long)).ok
    body = form(responses.calls[0])["Body"]
    assert len(body) <= 160
    assert body.endswith(" word...")
    assert segments(body) == 1


@responses.activate
def test_curly_quotes_and_line_breaks_from_logs_keep_the_text_in_gsm7() -> None:
    responses.post(URL, json=created(), status=201)
    quoted = incident(
        group={"model_version": "“v2”\r\nnext"},
        annotations={"summary": "model {{ group.model_version }} – down"},
    )
    assert notifier().send(notification(Event.FIRING, quoted)).ok
    body = form(responses.calls[0])["Body"]
    assert body.startswith('CRITICAL prediction-5xx: model "v2" next - down (threshold 5%)')


@responses.activate
def test_rate_limit_is_retryable_with_retry_after() -> None:
    responses.post(
        URL, json={"code": 20429, "message": "Too Many Requests"}, status=429, headers={"Retry-After": "12"}
    )
    delivery = notifier().send(notification())
    assert delivery == Delivery(
        ok=False, error="sms to +15550100: HTTP 429: 20429 Too Many Requests", retry_after=12.0
    )


@responses.activate
def test_retry_after_as_an_http_date_is_read_against_the_clock() -> None:
    later = (NOW + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    responses.post(
        URL, json={"code": 20429, "message": "Too Many Requests"}, status=429, headers={"Retry-After": later}
    )
    assert notifier().send(notification()).retry_after == 30.0


@responses.activate
def test_an_invalid_number_is_permanent() -> None:
    responses.post(
        URL,
        json={
            "code": 21211,
            "message": "The 'To' number +15550100 is not a valid phone number.",
            "status": 400,
        },
        status=400,
    )
    delivery = notifier().send(notification())
    assert delivery == Delivery(
        ok=False,
        error="sms to +15550100: HTTP 400: 21211 The 'To' number +15550100 is not a valid phone number.",
        permanent=True,
    )


@responses.activate
def test_server_errors_are_retryable() -> None:
    responses.post(URL, body="upstream timeout", status=503)
    delivery = notifier().send(notification())
    assert delivery == Delivery(ok=False, error="sms to +15550100: HTTP 503: upstream timeout")


@responses.activate
def test_a_retry_only_sends_to_the_numbers_still_missing() -> None:
    answers = iter(
        [(201, created()), (429, {"code": 20429, "message": "Too Many Requests"}), (201, created())]
    )

    def twilio(request: Any) -> tuple[int, dict[str, str], str]:
        status, body = next(answers)
        return status, {}, json.dumps(body)

    responses.add_callback(responses.POST, URL, callback=twilio)
    sms = notifier(to=["+15550100", "+15550101"])

    assert not sms.send(notification()).ok
    assert sms.send(notification()).ok

    assert [form(call)["To"] for call in responses.calls] == ["+15550100", "+15550101", "+15550101"]


@responses.activate
def test_the_auth_token_and_sid_never_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(
        URL,
        json={"code": 20003, "message": f"Authenticate: /2010-04-01/Accounts/{SID} with {TOKEN}"},
        status=401,
    )
    delivery = notifier().send(notification())
    assert (
        delivery.error == "sms to +15550100: HTTP 401: 20003 Authenticate: /2010-04-01/Accounts/*** with ***"
    )
    assert delivery.permanent
    assert TOKEN not in caplog.text


@responses.activate
def test_network_errors_are_retryable_and_hide_the_sid() -> None:
    responses.post(URL, body=requests.ConnectionError(f"cannot connect to {URL}"))
    delivery = notifier().send(notification())
    assert (delivery.ok, delivery.permanent) == (False, False)
    assert delivery.error.startswith("sms to +15550100: network error: ConnectionError: cannot connect to")
    assert SID not in delivery.error

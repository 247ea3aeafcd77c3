import re

import pytest

from watcher.query_filters import MATCH_ALL, And, Eq, Exists, In, Not, Or, Range, filter_fields, parse_filter


def test_mapping_forms_parse_to_the_filter_ast() -> None:
    assert parse_filter({"service": "api"}) == Eq("service", "api")
    assert parse_filter({"status": [500, 502]}) == In("status", (500, 502))
    assert parse_filter({"status": {"gte": 500, "lt": 600}}) == Range("status", gte=500, lt=600)
    assert parse_filter({"model": {"ne": "x"}}) == Not(Eq("model", "x"))
    assert parse_filter({"client_id": {"exists": False}}) == Not(Exists("client_id"))
    assert parse_filter({"or": [{"status": 429}, {"status": 503}]}) == Or(
        (Eq("status", 429), Eq("status", 503))
    )
    assert parse_filter({"a": 1, "b": 2}) == And((Eq("a", 1), Eq("b", 2)))
    assert parse_filter(None) == MATCH_ALL


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"status": {"gte": "high"}}, "'gte' for field 'status' must be a number, got 'high'"),
        ({"status": {"between": [1, 2]}}, "unknown operator 'between' for field 'status'"),
        ({"or": []}, "'or' takes a non-empty list of filters"),
        ({"x": {"exists": "yes"}}, "'exists' for field 'x' must be true or false"),
        ({"x": {"a": 1}}, "unknown operator 'a'"),
        ("status", "a filter must be a mapping of field: condition, got str"),
        ({"x": {"k": [1]}}, "unknown operator 'k'"),
        ({"x": {}}, "no condition given for field 'x'"),
        ({"x": {"in": 3}}, "'in' for field 'x' takes a list"),
        ({"x": {"nested": 1}}, "unknown operator 'nested'"),
    ],
)
def test_bad_filters_say_what_is_wrong(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        parse_filter(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"status": ">=500"},
            "'>=500' for field 'status' is text, not a comparison (it would only match the string '>=500'): "
            "write status: {gte: 500}",
        ),
        (
            {"status": "!= 200"},
            "'!= 200' for field 'status' is text, not a comparison (it would only match the string "
            "'!= 200'): write status: {ne: 200}",
        ),
        (
            {"inputs": {"country": "US"}},
            "unknown operator 'country' for field 'inputs' (allowed: eq, exists, gt, gte, in, lt, lte, ne, "
            "not_in); for the nested field write 'inputs.country: US'",
        ),
    ],
)
def test_footguns_are_refused_with_the_fix(spec: object, message: str) -> None:
    # Each was accepted or unhelpful before: a filter that never matches, or no hint at the dot.
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_filter(spec)


def test_strings_that_merely_start_with_a_letter_or_sign_are_still_values() -> None:
    assert parse_filter({"route": "/predict"}) == Eq("route", "/predict")
    assert parse_filter({"op": "->"}) == Eq("op", "->")


def test_filter_fields_lists_every_field_read() -> None:
    flt = parse_filter({"service": "api", "or": [{"status": 429}, {"features.age": {"gt": 3}}]})
    assert filter_fields(flt) == {"service", "status", "features.age"}

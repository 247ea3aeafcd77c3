import pytest

from watcher.query import MATCH_ALL, And, Eq, Exists, In, Not, Or, Range, filter_fields, parse_filter


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


def test_filter_fields_lists_every_field_read() -> None:
    flt = parse_filter({"service": "api", "or": [{"status": 429}, {"features.age": {"gt": 3}}]})
    assert filter_fields(flt) == {"service", "status", "features.age"}

"""The store's answers read back without a server: aggregations (including odd ones), bucket keys,
two buckets of one group merged, and the store's error words."""

from __future__ import annotations

import json

import pytest

from watcher.query import Cardinality, Count, Histogram, Percentiles, Stats, Terms
from watcher.store.answers import error_message, key_text, merge_values, read_aggregate, shard_failure
from watcher.store.search_client import read_json


def test_reading_aggregates():
    assert read_aggregate(Percentiles("x", (50.0, 99.0)), 0, {"values": {"50.0": 3.0, "99.0": "NaN"}}) == {
        50.0: 3.0,
        99.0: None,
    }
    listed = {"values": [{"key": 99.9, "value": 8.5}, {"key": 50.0, "value": None}]}
    assert read_aggregate(Percentiles("x", (50.0, 99.9)), 0, listed) == {50.0: None, 99.9: 8.5}
    assert read_aggregate(Stats("x"), 0, {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}) == {
        "avg": None,
        "min": None,
        "max": None,
        "sum": None,
        "count": 0,
    }
    bool_terms = {
        "buckets": [{"key": 1, "key_as_string": "true", "doc_count": 4}, {"key": 2.0, "doc_count": 1}]
    }
    assert read_aggregate(Terms("x"), 0, bool_terms) == {"true": 4, "2": 1}
    assert read_aggregate(Count(), 12, {}) == 12
    assert read_aggregate(Histogram("x", (1.0,)), 0, {}) == [0, 0]


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (False, "false"), (200, "200"), (200.0, "200"), (1.5, "1.5"), ("v", "v")],
)
def test_key_text(value, text):
    assert key_text(value) == text


def test_error_messages():
    search_error = {
        "type": "search_phase_execution_exception",
        "reason": "all shards failed",
        "root_cause": [{"type": "query_shard_exception", "reason": "failed to create query: bad"}],
    }
    assert error_message(search_error) == "query_shard_exception: failed to create query: bad"
    assert error_message({"type": "mapper_parsing_exception", "reason": "failed to parse field [x]"}) == (
        "mapper_parsing_exception: failed to parse field [x]"
    )
    assert error_message("plain text") == "plain text"
    assert (
        shard_failure({"timed_out": True}) == "the search timed out in the store; partial results discarded"
    )
    failed = {"_shards": {"total": 5, "failed": 2, "failures": [{"reason": {"type": "x", "reason": "disk"}}]}}
    assert shard_failure(failed) == "2 of 5 shards failed: x: disk"
    assert shard_failure({"_shards": {"total": 1, "failed": 0}}) is None


def test_merging_two_buckets_of_one_group():
    assert merge_values(Count(), 2, 3) == 5
    assert merge_values(Histogram("x", (1.0,)), [1, 2], [3, 4]) == [4, 6]
    assert merge_values(Terms("x", 2), {"a": 1, "b": 5}, {"a": 3, "c": 1}) == {"b": 5, "a": 4}
    assert merge_values(Cardinality("x"), 3, 4) == 4
    empty = {"avg": None, "min": None, "max": None, "sum": None, "count": 0}
    some = {"avg": 2.0, "min": 1.0, "max": 3.0, "sum": 4.0, "count": 2}
    assert merge_values(Stats("x"), empty, some) == some
    assert merge_values(
        Stats("x"), some, {"avg": 10.0, "min": 10.0, "max": 10.0, "sum": 10.0, "count": 1}
    ) == {
        "avg": 14.0 / 3,
        "min": 1.0,
        "max": 10.0,
        "sum": 14.0,
        "count": 3,
    }
    assert merge_values(Percentiles("x", (50.0,)), {50.0: 1.0}, {50.0: 9.0}) == {50.0: 1.0}


@pytest.mark.parametrize(
    "text",
    [
        '{"responses": [{"aggregations": {"a0": {"value": 0.1}, "a1": {"values": [{"key": 99.0}]}}}]}',
        "[73.00000000000001, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 1E+2, 0.30000000000000004]",
        '{"value": NaN, "min": -Infinity}',
        '{"key": 18446744073709551615, "doc_count": -9223372036854775808}',
        '{"key": "\\ud800 lone surrogate"}',
    ],
)
def test_answers_read_as_the_json_module_reads_them(text: str) -> None:
    """orjson reads answers first; what it refuses (NaN, lone surrogates) still reads, and numbers
    (to an unsigned_long's 2**64 - 1) read the same."""
    expected = json.loads(text)
    got = read_json(text)
    assert repr(got) == repr(expected)
    assert repr(read_json(text.encode("utf-8", "surrogatepass"))) == repr(expected)

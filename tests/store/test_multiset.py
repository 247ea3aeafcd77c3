"""The sorted numeric multiset behind percentiles from partials (``watcher.store.multiset``): a
window slid bucket by bucket answers DuckDB's ``quantile_cont`` of its rows (to the last bit), and answering
it loads no NumPy (about 11 MB of a daemon's RSS)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.store.multiset import Sorted, Tally

FRACTIONS = (0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0)


def test_a_sliding_window_answers_duckdbs_quantile_cont() -> None:
    chance = random.Random(13)

    def bucket() -> Counter[float]:
        digits = chance.choice((0, 1, 3))  # few or many duplicates
        return Counter(round(chance.lognormvariate(5, 1), digits) for _ in range(chance.randrange(0, 300)))

    buckets = [bucket() for _ in range(60)]
    parts = [Sorted.of(bucket) for bucket in buckets]
    window, width = Tally(Sorted.of({})), 12
    with duckdb.connect() as db:
        for newest, part in enumerate(parts):
            window.add(part)
            if newest >= width:
                window.take_off(parts[newest - width])
            inside = buckets[max(0, newest - width + 1) : newest + 1]
            rows = [value for counted in inside for value in counted.elements()]
            if not rows:
                assert window.quantile(0.5) is None
                continue
            db.execute("CREATE OR REPLACE TABLE w AS SELECT unnest($1::DOUBLE[]) AS v", [rows])
            expected = db.execute(f"SELECT quantile_cont(v, {list(FRACTIONS)}) FROM w").fetchone()[0]
            # the same ranks and interpolation; the last bit may differ in how the weight is applied
            assert [window.quantile(f) for f in FRACTIONS] == pytest.approx(expected, rel=1e-12)
            assert window.total == len(rows)


def test_taking_off_every_bucket_leaves_an_empty_multiset() -> None:
    first, second = Sorted.of({1.5: 2, 3.0: 1}), Sorted.of({1.5: 1, 2.0: 4})
    both = Tally(first)
    both.add(second)
    assert list(both.counted().items()) == [(1.5, 3), (2.0, 4), (3.0, 1)]
    assert (first.values, first.counts) == ([1.5, 3.0], [2, 1])  # a bucket is never changed
    both.take_off(first)
    both.take_off(second)
    assert (both.counted(), both.total, both.quantile(0.5)) == ({}, 0, None)


def test_percentiles_from_partials_load_no_numpy() -> None:
    probe = (
        "import sys\n"
        "from watcher.query import Percentiles\n"
        "from watcher.store.partial_values import Layout, final\n"
        "aggregate = Percentiles('latency_ms', (99.0,))\n"
        "layout = Layout([aggregate])\n"
        "part = layout.part({'p0': {120.0: 3, 80.5: 1}})\n"
        "print(final(aggregate, part[0]), 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["{99.0:", "120.0}", "False"]


@settings(max_examples=150, deadline=None)
@given(
    buckets=st.lists(
        st.dictionaries(st.integers(0, 40).map(float), st.integers(1, 3), max_size=12),
        min_size=1,
        max_size=40,
    ),
    width=st.integers(1, 8),
    asked=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_a_window_slid_in_place_answers_as_one_summed_afresh(
    buckets: list[dict[float, int]], width: int, asked: list[bool]
) -> None:
    """Values leaving the window and coming back, percentiles asked at some steps only: the window
    changed in place answers as a multiset summed from its buckets afresh."""
    parts = [Sorted.of(bucket) for bucket in buckets]
    window = Tally(Sorted.of({}))
    for newest, part in enumerate(parts):
        window.add(part)
        if newest >= width:
            window.take_off(parts[newest - width])
        afresh: Counter[float] = Counter()
        for bucket in buckets[max(0, newest - width + 1) : newest + 1]:
            afresh.update(bucket)
        if asked[newest]:
            expected = Sorted.of(afresh)
            assert [window.quantile(f) for f in FRACTIONS] == [expected.quantile(f) for f in FRACTIONS]
        assert window.counted() == dict(sorted(afresh.items()))

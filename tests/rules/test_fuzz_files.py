"""Fuzz: a mutated rule file or watcher.yaml is an error report, never a crash, never a hog.

The inputs are the shipped files with a few edits (``mutants.py``); the seed is fixed
(``derandomize``) so CI runs the same examples every time, in a few seconds. Each load must end
in the loader's own answer (a ``RuleSet`` with errors, a ``ConfigError``) within a second and
40 MB of Python allocations; ``bench/bench_fuzz_rules.py`` runs the same for minutes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rules.mutants import CONFIG_SEEDS, KINDS, RULE_SEEDS, TOKENS, Edit, measured, mutate, workdir
from watcher.rules.loader import ConfigError, load_config, load_rules

MAX_SECONDS = 1.0
MAX_PEAK = 40 * 1024 * 1024

EDITS = st.lists(
    st.tuples(
        st.integers(0, KINDS - 1),
        st.floats(0, 1, exclude_max=True),
        st.integers(0, len(TOKENS) - 1),
        st.integers(1, 120),
    ),
    min_size=1,
    max_size=4,
)
FUZZ = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,  # timed below, with the limit this test is about
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return workdir(tmp_path_factory.mktemp("mutants"))


@FUZZ
@given(seed=st.sampled_from(RULE_SEEDS), edits=EDITS)
def test_a_mutated_rule_file_is_reported_never_raised(folder: Path, seed: Path, edits: list[Edit]) -> None:
    path = folder / "mutant.yaml"
    path.write_text(mutate(seed.read_text(), edits), encoding="utf-8")

    cost = measured(lambda: load_rules([path]))  # raises nothing: any exception fails the test

    assert cost.seconds < MAX_SECONDS
    assert cost.peak_bytes < MAX_PEAK


def _load_config(path: Path) -> None:
    with contextlib.suppress(ConfigError):  # the loader's own answer; any other exception fails
        load_config(path, environ={})


@FUZZ
@given(seed=st.sampled_from(CONFIG_SEEDS), edits=EDITS)
def test_a_mutated_watcher_yaml_is_a_config_error_never_another(
    folder: Path, seed: Path, edits: list[Edit]
) -> None:
    path = folder / "watcher.yaml"
    path.write_text(mutate(seed.read_text(), edits), encoding="utf-8")

    cost = measured(lambda: _load_config(path))

    assert cost.seconds < MAX_SECONDS
    assert cost.peak_bytes < MAX_PEAK


def test_the_mutants_reach_the_limits_they_guard() -> None:
    """The vocabulary is not idle: the edits can make each kind of hostile file."""
    assert "&a " in TOKENS
    assert "1" + "0" * 5000 in TOKENS
    assert mutate("a: 1\n", [(4, 0.0, 0, 79)]).count("{not: ") == 80

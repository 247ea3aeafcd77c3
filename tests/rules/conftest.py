"""The harness of the rule-file tests: each test module names its folder of fixtures
(``TESTDATA``, one mistake per file beside good files), and the config those files load with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from watcher.config import Config
from watcher.rules.loader import load_config, load_rules

MistakesCheck = Callable[[Mapping[str, str], str], None]


@pytest.fixture
def config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The ``watcher.yaml`` of the test module's ``TESTDATA`` folder, with that folder as working
    directory so paths, and the messages naming them, are short and exact."""
    monkeypatch.chdir(request.module.TESTDATA)
    return load_config(Path("watcher.yaml"), environ={})


@pytest.fixture
def one_mistake_per_file(config: Config) -> MistakesCheck:
    """Asserts that every ``rule.*.yaml`` of the folder but the good one is reported with exactly
    its message of ``mistakes`` (file name -> ``line:col: message``) and loads no rule, and that
    every such file has its message there."""

    def check(mistakes: Mapping[str, str], good: str) -> None:
        fixtures = sorted(path.name for path in Path().glob("rule.*.yaml") if path.name != good)
        loaded = {name: load_rules([Path(name)], config) for name in fixtures}

        reported = {name: [str(error) for error in ruleset.errors] for name, ruleset in loaded.items()}
        assert reported == {name: [f"{name}:{expected}"] for name, expected in sorted(mistakes.items())}
        assert [rule.name for ruleset in loaded.values() for rule in ruleset.rules] == []

    return check

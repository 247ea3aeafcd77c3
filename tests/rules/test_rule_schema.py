"""The rule JSON Schema (for editors) agrees with the loader on good and bad rule files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from watcher.cli import schema as schema_command
from watcher.rules.schema import rule_json_schema

TESTDATA = Path(__file__).parent / "testdata"
GOOD = {"name": "api-5xx", "source": "ml-api", "where": {"status": {"gte": 500}}, "threshold": {"above": 1}}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = rule_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["rule.good.yaml", "rule.good-list.yaml"])
def test_good_rule_files_are_valid(validator: jsonschema.Draft202012Validator, name: str) -> None:
    document = yaml.safe_load((TESTDATA / name).read_text())

    assert list(validator.iter_errors(document)) == []


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({**GOOD, "windw": "5m"}, id="unknown key"),
        pytest.param({**GOOD, "every": "5mins"}, id="bad duration"),
        pytest.param({**GOOD, "min_events": "lots"}, id="wrong type"),
        pytest.param({**GOOD, "flatline": {"below": 1}}, id="two detectors"),
        pytest.param({"name": "x", "source": "ml-api"}, id="no detector"),
        pytest.param({**GOOD, "labels": {"on-call": "x"}}, id="bad label name"),
        pytest.param({**GOOD, "signal": "cardinality"}, id="shorthand needs settings"),
        pytest.param({**GOOD, "signal": {"count": {}, "ratio": {"of": {"a": 1}}}}, id="two signals"),
        pytest.param({"source": "ml-api", "threshold": {"above": 1}}, id="no name"),
        pytest.param({"rules": [GOOD, {**GOOD, "severity": "fatal"}]}, id="bad rule in a list"),
        pytest.param({"rules": [GOOD], "source": "ml-api"}, id="key next to rules"),
        pytest.param({**GOOD, "groups_from": "1h"}, id="groups_from without group_by"),
        pytest.param({**GOOD, "forget_after": "1d"}, id="forget_after without group_by"),
        pytest.param({**GOOD, "group_by": ["svc"], "forget_after": "1 day"}, id="bad forget_after"),
    ],
)
def test_bad_rules_are_rejected(validator: jsonschema.Draft202012Validator, bad: dict[str, Any]) -> None:
    assert list(validator.iter_errors(bad)) != []


def test_shorthand_signal_and_duration_defaults_read_like_rule_files() -> None:
    schema = rule_json_schema()
    rule = schema["$defs"]["Rule"]["properties"]

    assert {"enum": ["count"]} in rule["signal"]["anyOf"]
    assert rule["window"]["default"] == "5m"
    assert rule["where"]["type"] == "object"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code = schema_command.run(argparse.Namespace(output=None))

    assert code == 0
    assert json.loads(capsys.readouterr().out) == rule_json_schema()


def test_schema_command_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "rule.schema.json"

    code = schema_command.run(argparse.Namespace(output=target))

    assert code == 0
    assert json.loads(target.read_text()) == rule_json_schema()
    assert capsys.readouterr().out == f"wrote the rule schema to {target}\n"


def test_schema_command_reports_an_unwritable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = schema_command.run(argparse.Namespace(output=tmp_path / "missing" / "rule.schema.json"))

    assert code == 1
    target = tmp_path / "missing" / "rule.schema.json"
    assert capsys.readouterr().err == f"watcher schema: cannot write {target}: No such file or directory\n"

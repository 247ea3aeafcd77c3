"""Rule files: one mistake per file in testdata/, each asserted against its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import Config
from watcher.rules.loader import load_rules

TESTDATA = Path(__file__).parent / "testdata"

MISTAKES = {
    "rule.unknown-key-did-you-mean.yaml": "3:1: unknown key 'windw' (did you mean 'window'?)",
    "rule.unknown-key.yaml": "4:1: unknown key 'foo'",
    # A name from other tools (Prometheus, Datadog) gets the signal to write instead.
    "rule.signal-alias-p99.yaml": "3:10: unknown key 'p99': write percentile: {field: FIELD, q: 99}",
    "rule.unknown-nested-key.yaml": "4:42: unknown key 'interpolaton'",
    "rule.key-outside-its-detector.yaml": "4:1: unknown key 'above' (it belongs under 'threshold' or "
    "'forecast')",
    "rule.wrong-type.yaml": "3:13: 'min_events' must be an integer, got 'lots'",
    "rule.group-by-not-a-list.yaml": "3:11: 'group_by' must be a list, got a mapping",
    "rule.bad-duration.yaml": "3:8: invalid duration '5mins': use a number and a unit (ms, s, m, h, d, w), "
    "e.g. 30s, 5m, 1h30m",
    "rule.duration-without-unit.yaml": "4:6: invalid duration 5: add a unit, e.g. 5s or 5m",
    "rule.unknown-source.yaml": "2:9: unknown source 'ml-apii' (defined: local, ml-api)",
    "rule.missing-name.yaml": "1:1: missing required key 'name'",
    "rule.missing-source.yaml": "1:1: missing required key 'source'",
    "rule.no-detector.yaml": "1:1: a rule has exactly one detector of threshold, flatline, spike, drift, "
    "validity, forecast, canary, match, values, new_value, change; got none",
    "rule.two-detectors.yaml": "1:1: a rule has exactly one detector of threshold, flatline, spike, drift, "
    "validity, forecast, canary, match, values, new_value, change; got threshold, flatline",
    "rule.bad-filter-operator.yaml": "5:12: unknown operator 'gtee' for field 'status' "
    "(allowed: eq, exists, gt, gte, in, lt, lte, ne, not_in); for the nested field write 'status.gtee: 500'",
    "rule.bad-ratio-filter.yaml": "4:25: 'in' for field 'status' takes a list",
    "rule.filter-not-a-mapping.yaml": "3:8: a filter must be a mapping of field: condition, got str",
    "rule.bad-severity.yaml": "4:11: 'severity' must be one of 'critical', 'error', 'warning' or 'info', "
    "got 'fatal'",
    "rule.bad-label-name.yaml": "4:20: key 'on-call' in 'labels' must match ^[A-Za-z_][A-Za-z0-9_]*$",
    "rule.label-value-not-a-string.yaml": "4:28: 'labels.paging' must be a string, got true "
    "(put it in quotes)",
    "rule.bad-name.yaml": "1:7: 'name' must match ^[A-Za-z0-9][A-Za-z0-9_.:-]*$, got '5xx rate'",
    "rule.percentile-out-of-range.yaml": "4:38: 'signal.percentile.q' must be <= 100, got 120",
    "rule.signal-shorthand-typo.yaml": "3:9: unknown value 'cuont' (did you mean 'count'?)",
    "rule.two-signals.yaml": "3:1: a signal has exactly one of count, ratio, percentile, stat, cardinality; "
    "got count, cardinality",
    "rule.threshold-without-bound.yaml": "3:1: threshold needs 'above' or 'below'",
    "rule.zero-window.yaml": "3:1: 'every' and 'window' must be longer than 0s",
    "rule.groups-from-without-group-by.yaml": "3:1: 'groups_from' needs 'group_by': without it the rule "
    "has one group, always evaluated",
    "rule.forget-after-without-group-by.yaml": "4:1: 'forget_after' needs 'group_by': without it the rule "
    "has one group, always evaluated",
    "rule.groups-from-within-window.yaml": "5:1: 'groups_from' (10m) must be longer than 'window' (10m), "
    "or 0s for none",
    "rule.forget-after-within-window.yaml": "6:1: 'forget_after' (5m) must be longer than 'window' (10m)",
    "rule.forget-after-not-a-duration.yaml": "5:15: invalid duration 'never': use a number and a unit "
    "(ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m",
    "rule.forget-after-before-groups-from.yaml": "5:1: 'forget_after' (30m) must be at least 'groups_from' "
    "(1h, the default for a grouped flatline)",
    "rule.invalid-yaml.yaml": "3:12: invalid YAML: mapping values are not allowed here",
    "rule.unclosed-flow.yaml": "4:1: invalid YAML: expected ',' or '}', but got '<stream end>' "
    "(while parsing a flow mapping at line 3)",
    "rule.empty.yaml": "1:1: empty file: expected a rule, or 'rules:' with a list of rules",
    "rule.not-a-mapping.yaml": "1:1: expected a rule mapping, or 'rules:' with a list of rules, got a list",
    "rule.duplicate-key.yaml": "4:1: duplicate key 'source' (first at line 2)",
    "rule.rules-not-a-list.yaml": "2:3: 'rules' must be a list of rules, got a mapping",
    "rule.rule-not-a-mapping.yaml": "5:5: a rule must be a mapping, got 'just-a-name'",
    "rule.key-next-to-rules.yaml": "1:1: unknown key 'source' next to 'rules' "
    "(put it inside a rule of the list)",
    # Hostile files (issue 12): each was a traceback, or ran the machine out of memory.
    "rule.control-character.yaml": "1:8: invalid YAML: control character U+001E is not allowed "
    '(write it as "\\x1e" inside double quotes)',
    "rule.duration-overflow.yaml": "4:9: invalid duration '99999999999999w': at most 3650d (10 years)",
    "rule.float-tag-not-a-number.yaml": "4:8: invalid YAML: 'x' is not a valid !!float",
    "rule.integer-too-long.yaml": "5:13: integer too large: 5,001 digits (at most 18)",
    "rule.filter-nested-too-deep.yaml": "5:302: nested too deeply: more than 50 levels",
    "rule.alias-bomb.yaml": "7:8: aliases expand this document past 100,000 values (the alias *e adds "
    "66,430): write the values out or use fewer aliases",
    "rule.baseline-empty.yaml": "4:19: baseline .: cannot read file: it is a folder",
    "rule.baseline-folder.yaml": "4:19: baseline duplicate-name: cannot read file: it is a folder",
    "rule.evidence-bad-sort.yaml": "4:21: 'evidence.sort' is one field and its order, "
    "e.g. {latency_ms: desc}",
    "rule.evidence-size-zero.yaml": "4:18: 'evidence.size' must be >= 1, got 0",
    "rule.evidence-unknown-key.yaml": "4:12: unknown key 'fileds' (did you mean 'fields'?)",
}
# Files whose mistake is outside their (valid) rules: those rules still load.
STILL_LOADED = {"rule.rule-not-a-mapping.yaml": ["fine"], "rule.key-next-to-rules.yaml": ["fine"]}


@pytest.mark.parametrize(("name", "expected"), MISTAKES.items(), ids=list(MISTAKES))
def test_each_mistake_is_reported_at_its_position(config: Config, name: str, expected: str) -> None:
    ruleset = load_rules([Path(name)], config)

    assert [str(error) for error in ruleset.errors] == [f"{name}:{expected}"]
    assert [rule.name for rule in ruleset.rules] == STILL_LOADED.get(name, [])


def test_every_mistake_fixture_is_asserted() -> None:
    fixtures = {path.name for path in TESTDATA.glob("rule.*.yaml")}
    assert fixtures - {"rule.good.yaml", "rule.good-list.yaml"} == set(MISTAKES)


def test_good_files_load_every_rule(config: Config) -> None:
    ruleset = load_rules([Path("rule.good.yaml"), Path("rule.good-list.yaml")], config)

    assert ruleset.errors == []
    assert [rule.name for rule in ruleset.rules] == [
        "prediction-5xx-rate",
        "prediction-latency-p99",
        "prediction-traffic-flatline",
    ]
    assert ruleset.files == {
        "prediction-5xx-rate": Path("rule.good.yaml"),
        "prediction-latency-p99": Path("rule.good-list.yaml"),
        "prediction-traffic-flatline": Path("rule.good-list.yaml"),
    }
    assert ruleset.rules[2].signal.kind == "count"


def test_duplicate_name_across_files_keeps_the_first(config: Config) -> None:
    ruleset = load_rules([Path("duplicate-name")], config)

    assert [str(error) for error in ruleset.errors] == [
        "duplicate-name/b.yaml:5:11: duplicate rule name 'prediction-5xx-rate' "
        "(first defined at duplicate-name/a.yaml:2:7)"
    ]
    assert [rule.name for rule in ruleset.rules] == ["prediction-5xx-rate", "prediction-latency"]
    assert ruleset.files["prediction-5xx-rate"] == Path("duplicate-name/a.yaml")
    assert ruleset.rules[0].threshold is not None
    assert ruleset.rules[0].threshold.above == 0.05


def test_folder_with_one_bad_file_loads_the_two_good_ones(tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text("name: a\nsource: local\nthreshold: {above: 1}\n")
    (tmp_path / "b-bad.yaml").write_text("name: b\nsource: local\nthreshold: {above: 1}\nevery: 5mins\n")
    (tmp_path / "c-good.yml").write_text("name: c\nsource: local\nflatline: {below: 1}\n")

    ruleset = load_rules([tmp_path], None)

    assert [rule.name for rule in ruleset.rules] == ["a", "c"]
    assert [(error.path.name, error.line, error.col) for error in ruleset.errors] == [("b-bad.yaml", 4, 8)]
    assert ruleset.scanned == [tmp_path / "a-good.yaml", tmp_path / "b-bad.yaml", tmp_path / "c-good.yml"]


def test_folders_are_searched_recursively_in_order_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    rule = "name: {}\nsource: local\nthreshold: {{above: 1}}\n"
    for relative, name in [("z.yaml", "z"), ("team/a.yaml", "team-a"), ("team/deep/b.yml", "deep-b")]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(rule.format(name))
    (tmp_path / ".hidden.yaml").write_text("not: a rule")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("not: a rule")
    (tmp_path / "README.md").write_text("# rules")

    ruleset = load_rules([tmp_path, tmp_path / "z.yaml"], None)  # z.yaml given twice: read once

    assert ruleset.errors == []
    assert [rule.name for rule in ruleset.rules] == ["team-a", "deep-b", "z"]


def test_every_mistake_of_a_file_is_reported_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "name: many\nsource: nowhere\nevery: 5mins\nseverity: loud\nsignal:\n  stat: {field: x, fn: median}\n"
        "threshold: {abov: 1}\n"
    )
    config = Config.model_validate({"sources": {"local": {"store": "embedded"}}})

    ruleset = load_rules([path], config)

    assert [f"{error.line}:{error.col}: {error.message}" for error in ruleset.errors] == [
        "2:9: unknown source 'nowhere' (defined: local)",
        "3:8: invalid duration '5mins': use a number and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m",
        "4:11: 'severity' must be one of 'critical', 'error', 'warning' or 'info', got 'loud'",
        "6:24: 'signal.stat.fn' must be one of 'avg', 'min', 'max' or 'sum', got 'median'",
        "7:13: unknown key 'abov' (did you mean 'above'?)",
    ]


def test_one_bad_rule_in_a_list_does_not_keep_out_the_others(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: first, source: local, threshold: {above: 1}}\n"
        "  - {name: second, source: local, threshold: {above: 1}, min_events: -1}\n"
        "  - {name: third, source: local, flatline: {below: 3}}\n"
    )

    ruleset = load_rules([path], None)

    assert [rule.name for rule in ruleset.rules] == ["first", "third"]
    assert [str(error) for error in ruleset.errors] == [f"{path}:3:70: 'min_events' must be >= 0, got -1"]


def test_without_a_config_sources_are_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text("name: a\nsource: anything\nthreshold: {above: 1}\n")

    assert [rule.source for rule in load_rules([path], None).rules] == ["anything"]


def test_a_missing_path_and_an_unreadable_file_are_errors(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))

    ruleset = load_rules([tmp_path / "missing", tmp_path / "latin1.yaml"], None)

    assert [str(error) for error in ruleset.errors] == [
        f"{tmp_path / 'missing'}:1:1: no such rule file or folder",
        f"{tmp_path / 'latin1.yaml'}:1:10: cannot read file: it is not UTF-8 text (byte 0xe9)",
    ]


def test_yaml_anchors_and_merge_keys_share_settings(tmp_path: Path) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text(
        "rules:\n"
        "  - &base {name: first, source: local, window: 10m, threshold: {above: 1}}\n"
        "  - {<<: *base, name: second, window: 1h}\n"
    )

    ruleset = load_rules([path], None)

    assert ruleset.errors == []
    assert [(rule.name, rule.window.total_seconds()) for rule in ruleset.rules] == [
        ("first", 600.0),
        ("second", 3600.0),
    ]

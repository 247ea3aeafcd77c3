"""Severity levels and per-group overrides in rule files: one mistake per file in testdata/levels/,
each asserted against its exact message; an overrides file is read next to its rule."""

from __future__ import annotations

from pathlib import Path

from tests.rules.conftest import MistakesCheck
from watcher.config import Config
from watcher.rules.loader import load_rules

TESTDATA = Path(__file__).parent / "testdata" / "levels"
GOOD = "rule.good-levels-and-overrides.yaml"

MISTAKES = {
    "rule.level-unknown.yaml": "4:21: unknown level 'warn' (did you mean 'warning'?)",
    "rule.level-not-a-number.yaml": "4:21: level 'warning' must be a number, got '2%'",
    "rule.levels-empty.yaml": "3:13: threshold 'below' has no level: write {warning: ..., critical: ...}",
    "rule.levels-out-of-order.yaml": "4:13: threshold 'above': 'critical' (0.02) must be above 'warning' "
    "(0.05), a more severe level is crossed later",
    "rule.severity-with-levels.yaml": "5:1: 'severity' comes from the levels of 'threshold': "
    "remove 'severity'",
    "rule.override-without-group-by.yaml": "4:1: 'overrides' needs 'group_by': without it the rule has one "
    "group, always evaluated",
    "rule.override-unknown-field.yaml": "6:14: override group field 'tennant' is not in group_by (tenant)",
    "rule.override-other-detector.yaml": "6:26: the override for tenant=a sets 'flatline' but the rule's "
    "detector is 'threshold'",
    "rule.override-on-spike.yaml": "5:1: 'overrides' apply to threshold and flatline rules, not spike",
    "rule.override-group-twice.yaml": "5:1: 'overrides' name the group tenant=a twice",
    "rule.override-without-setting.yaml": "6:5: an override sets exactly one of 'threshold' or 'flatline', "
    "as its rule does",
    "rule.override-empty-group.yaml": "6:13: 'overrides[0].group' needs at least 1 item",
    "rule.overrides-file-missing.yaml": "5:17: cannot read overrides file quotas-gone.csv: "
    "No such file or directory",
    "rule.overrides-file-not-a-number.yaml": "5:17: quotas-not-a-number.csv:3: 'above' must be a number, "
    "got 'lots'",
    "rule.overrides-file-unknown-column.yaml": "5:17: quotas-unknown-column.csv:1: unknown column 'abvoe': "
    "columns are group_by fields (tenant) and above or below",
    "rule.overrides-file-short-row.yaml": "5:17: quotas-short-row.csv:3: 2 cells, the header has 3",
    "rule.overrides-file-levels-out-of-order.yaml": "5:17: quotas-levels-out-of-order.csv:3: threshold "
    "'above': 'critical' (50) must be above 'warning' (90), a more severe level is crossed later",
    "rule.overrides-file-yaml-unknown-field.yaml": "5:17: quotas-unknown-field.yaml: entry 2: override "
    "group field 'team' is not in group_by (tenant)",
}


def test_every_mistake_is_reported_alone_at_its_position(one_mistake_per_file: MistakesCheck) -> None:
    one_mistake_per_file(MISTAKES, GOOD)


def test_levels_inline_overrides_and_an_overrides_file_load(config: Config) -> None:
    ruleset = load_rules([Path(GOOD)], config)
    assert ruleset.errors == []
    errors, quota = ruleset.rules

    assert errors.threshold is not None
    assert errors.threshold.levels("above", "info") == [("critical", 0.05), ("warning", 0.02)]
    assert quota.threshold_for({"tenant": "a"}).above == 0.5  # inline
    assert quota.threshold_for({"tenant": "b"}).levels("above", "info") == [
        ("critical", 0.4),
        ("warning", 0.2),
    ]
    assert quota.threshold_for({"tenant": "zz"}).above == 0.1  # the rule's default
    assert quota.overrides_file is not None
    assert quota.overrides_file.file == Path("quotas.csv")


def test_an_overrides_file_is_read_next_to_its_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "quota.yaml").write_text(
        "name: quota\nsource: api\ngroup_by: [tenant]\nthreshold: {above: 50}\noverrides_file: quotas.csv\n"
    )
    (rules / "quotas.csv").write_text("tenant,above\nbig,500\n")

    ruleset = load_rules([rules], None)

    assert ruleset.errors == []
    (rule,) = ruleset.rules
    assert rule.threshold_for({"tenant": "big"}).above == 500
    assert ruleset.files == {"quota": rules / "quota.yaml"}  # the CSV is no rule file

"""``merge``: what a reload of real rule files changes, and whose incidents end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.rules.loader import RuleSet, load_rules
from watcher.rules.reload import Retired, RuleChanges, merge

API_5XX: dict[str, Any] = {
    "name": "api-5xx",
    "source": "ml-api",
    "where": {"path": {"in": ["/predict", "/score"]}},
    "group_by": ["model_version"],
    "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
    "threshold": {"above": 0.05},
}
LATENCY: dict[str, Any] = {"name": "latency", "source": "ml-api", "flatline": {"below": 10}}


def write(folder: Path, name: str, *rules: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    body = rules[0] if len(rules) == 1 else {"rules": list(rules)}
    path.write_text(yaml.safe_dump(body))
    return path


def reload(before: RuleSet, folder: Path) -> RuleChanges:
    """Merge a fresh load of ``folder`` into the rules ``before`` loaded."""
    assert before.errors == []
    running = {rule.name: rule for rule in before.rules}
    return merge(running, before.files, load_rules([folder]))


def names(changes: RuleChanges) -> list[str]:
    return [rule.name for rule in changes.rules]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "rules"


def test_an_unchanged_reload_is_empty(folder: Path) -> None:
    write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    changes = reload(before, folder)
    assert changes.empty
    assert changes.rules == before.rules
    assert (changes.added, changes.changed, changes.kept, changes.retired, changes.removed) == ([],) * 5
    assert changes.summary() == "1 rules: 0 added, 0 changed, 0 removed"


def test_a_new_rule_is_added(folder: Path) -> None:
    write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    latency = write(folder, "latency", LATENCY)
    changes = reload(before, folder)
    assert not changes.empty
    assert (changes.added, changes.changed, changes.retired) == (["latency"], [], [])
    assert names(changes) == ["api-5xx", "latency"]
    assert changes.files["latency"] == latency
    assert changes.summary() == "2 rules: 1 added, 0 changed, 0 removed"


def test_an_edited_threshold_is_changed_and_keeps_its_incidents(folder: Path) -> None:
    write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    write(folder, "api-5xx", {**API_5XX, "threshold": {"above": 0.1}, "labels": {"team": "ml"}})
    changes = reload(before, folder)
    assert (changes.added, changes.changed, changes.retired, changes.removed) == ([], ["api-5xx"], [], [])
    (rule,) = changes.rules
    assert rule.threshold is not None
    assert rule.threshold.above == 0.1
    assert changes.summary() == "1 rules: 0 added, 1 changed, 0 removed"


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        ({"group_by": ["model_version", "region"]}, "group_by"),
        ({"source": "ml-api-eu"}, "source"),
        ({"threshold": None, "flatline": {"below": 5}}, "detector"),
        ({"source": "ml-api-eu", "group_by": []}, "source, group_by"),
    ],
)
def test_a_rule_that_measures_something_else_is_changed_and_its_incidents_end(
    folder: Path, edit: dict[str, Any], what: str
) -> None:
    write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    edited = {key: value for key, value in {**API_5XX, **edit}.items() if value is not None}
    write(folder, "api-5xx", edited)
    changes = reload(before, folder)
    assert changes.changed == ["api-5xx"]
    assert changes.retired == [
        Retired("api-5xx", f"rule api-5xx changed its {what}; its incidents start over")
    ]
    assert changes.removed == []  # it still runs, afresh
    assert names(changes) == ["api-5xx"]


def test_a_rule_whose_file_now_has_an_error_keeps_its_last_good_version(folder: Path) -> None:
    api = write(folder, "api-5xx", API_5XX)
    write(folder, "latency", LATENCY)
    before = load_rules([folder])
    old = before.rules[0]
    api.write_text(yaml.safe_dump({**API_5XX, "threshold": {"above": 0.5}, "every": "1sec"}))
    write(folder, "latency", {**LATENCY, "flatline": {"below": 20}})
    changes = reload(before, folder)
    assert changes.kept == ["api-5xx"]
    assert changes.retired == []
    assert changes.removed == []
    assert changes.changed == ["latency"]  # the valid file next to it is reloaded
    kept = next(rule for rule in changes.rules if rule.name == "api-5xx")
    assert kept is old
    assert changes.files["api-5xx"] == api
    assert len(changes.errors) == 1
    assert changes.errors[0].startswith(f"{api}:")
    assert "invalid duration '1sec'" in changes.errors[0]
    assert changes.summary() == (
        "2 rules: 0 added, 1 changed, 0 removed, 1 kept at their last good version (api-5xx)"
    )


def test_a_rule_in_an_unparsable_file_keeps_running(folder: Path) -> None:
    api = write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    api.write_text("name: api-5xx\nsource: [ml-api\n")
    changes = reload(before, folder)
    assert (changes.kept, changes.retired, names(changes)) == (["api-5xx"], [], ["api-5xx"])
    assert changes.empty  # nothing to do but raise the invalid-rules alert


def test_a_deleted_files_rule_is_removed_and_its_incidents_end(folder: Path) -> None:
    api = write(folder, "api-5xx", API_5XX)
    write(folder, "latency", LATENCY)
    before = load_rules([folder])
    api.unlink()
    changes = reload(before, folder)
    assert changes.retired == [Retired("api-5xx", f"rule api-5xx was removed from {api}")]
    assert changes.removed == ["api-5xx"]
    assert names(changes) == ["latency"]
    assert "api-5xx" not in changes.files
    assert changes.summary() == "1 rules: 0 added, 0 changed, 1 removed"


def test_a_rule_removed_while_another_file_is_broken_still_ends(folder: Path) -> None:
    write(folder, "both", API_5XX, LATENCY)
    broken = write(folder, "other", {**LATENCY, "name": "other"})
    before = load_rules([folder])
    write(folder, "both", LATENCY)
    broken.write_text("name: other\nsource: ml-api\n")  # no detector
    changes = reload(before, folder)
    assert changes.removed == ["api-5xx"]
    assert changes.kept == ["other"]


def test_a_rule_moved_to_another_file_is_unchanged(folder: Path) -> None:
    old = write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    old.unlink()
    moved = write(folder / "team", "all", API_5XX, LATENCY)
    changes = reload(before, folder)
    assert (changes.added, changes.changed, changes.retired) == (["latency"], [], [])
    assert changes.files["api-5xx"] == moved


def test_disabling_a_rule_ends_its_incidents(folder: Path) -> None:
    write(folder, "api-5xx", API_5XX)
    before = load_rules([folder])
    write(folder, "api-5xx", {**API_5XX, "enabled": False})
    changes = reload(before, folder)
    assert changes.changed == ["api-5xx"]
    assert changes.retired == [Retired("api-5xx", "rule api-5xx was disabled")]
    assert changes.removed == []  # still defined, just not evaluated
    assert [rule.enabled for rule in changes.rules] == [False]


def test_enabling_a_rule_again_ends_nothing(folder: Path) -> None:
    write(folder, "api-5xx", {**API_5XX, "enabled": False})
    before = load_rules([folder])
    write(folder, "api-5xx", API_5XX)
    changes = reload(before, folder)
    assert (changes.changed, changes.retired) == (["api-5xx"], [])


def test_a_missing_rule_folder_is_an_error_and_keeps_its_rules(tmp_path: Path, folder: Path) -> None:
    """An unmounted volume or a deleted folder is reported, not taken as "every rule removed"."""
    write(folder / "team", "api-5xx", API_5XX)
    other = write(tmp_path / "other", "latency", LATENCY)
    before = load_rules([folder, other])
    running = {rule.name: rule for rule in before.rules}
    shutil.rmtree(folder)
    other.unlink()
    changes = merge(running, before.files, load_rules([folder, other]))
    assert changes.kept == ["api-5xx", "latency"]
    assert changes.retired == []
    assert changes.errors == [
        f"{folder}:1:1: no such rule file or folder",
        f"{other}:1:1: no such rule file or folder",
    ]

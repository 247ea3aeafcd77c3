"""Files too large or too deep for testdata/, and the reader's limits one by one (issue 12).

The one-mistake files are in testdata/ with the others (``test_rule_files.py``); these are made
here because they are megabytes, or test a limit rather than a rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.duration import parse_duration
from watcher.rules.loader import ConfigError, load_config, load_rules
from watcher.rules.reader import Limits, ReadError, read_text

RULE = "name: r\nsource: local\nevery: 1m\nthreshold: {above: 1}\n"


def errors(path: Path) -> list[str]:
    return [f"{error.line}:{error.col}: {error.message}" for error in load_rules([path]).errors]


def test_a_mapping_3000_levels_deep_is_refused_at_the_level_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    levels = "".join("  " * (i + 1) + f"k{i}:\n" for i in range(3000))
    path.write_text(RULE + "labels:\n" + levels + "  " * 3001 + "x: 1\n")

    assert errors(path) == ["55:101: nested too deeply: more than 50 levels"]


def test_an_alias_cannot_nest_a_document_past_the_depth_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep-alias.yaml"
    deep = "[" * 30 + "1" + "]" * 30
    path.write_text(f"x: &deep {deep}\ny: {'[' * 25}*deep{']' * 25}\n" + RULE)

    assert errors(path) == ["2:29: nested too deeply: more than 50 levels with *deep"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: *nowhere\n", "1:4: invalid YAML: found undefined alias 'nowhere'"),
        ("a: &x [1, *x]\n", "1:11: invalid YAML: the alias *x refers to its own parent"),
        ("a: &x 1\nb: &x 2\n", "2:4: invalid YAML: duplicate anchor &x"),
        ("a: {<<: 5}\n", "1:9: invalid YAML: '<<' merges a mapping or a list of mappings, "
         "not a single value"),
        ("a: !!bool maybe\n", "1:4: invalid YAML: 'maybe' is not a valid !!bool"),
        ("a: !!timestamp never\n", "1:4: invalid YAML: 'never' is not a valid !!timestamp"),
        ("a: !!float ''\n", "1:4: invalid YAML: '' is not a valid !!float"),  # found by the bench's fuzzer
        ("a: 1\n---\nb: 2\n", "2:1: invalid YAML: expected a single document in the stream, "
         "but found another document"),
    ],
)  # fmt: skip
def test_documents_pyyaml_would_refuse_or_crash_on_are_positioned_errors(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    assert errors(path) == [expected]


def test_merge_keys_of_a_list_let_the_first_mapping_win(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "x: &one {every: 1m, window: 10m}\ny: &two {every: 5m, window: 1h, delay: 1m}\n"
        "rules:\n  - {<<: [*one, *two], name: r, source: local, threshold: {above: 1}}\n"
    )
    ruleset = load_rules([path])
    # 'x' and 'y' are reported next to 'rules'; the rule itself loads, merged.
    (rule,) = ruleset.rules
    assert (rule.every, rule.window, rule.delay) == tuple(map(parse_duration, ("1m", "10m", "1m")))


def test_a_file_past_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" * 1000)

    with pytest.raises(ReadError, match=r"^file too large: more than 4,096 bytes \(split it"):
        read_text(path, Limits(max_bytes=4096))
    assert read_text(path, Limits(max_bytes=5000)) == "a: 1\n" * 1000


def test_a_folder_named_as_watcher_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)

    assert str(caught.value) == f"{tmp_path}:1:1: cannot read file: it is a folder"


def test_durations_longer_than_ten_years_are_refused_not_overflowed() -> None:
    assert parse_duration("3650d").days == 3650
    for text in ("3651d", "99999999999999w", "9" * 400 + "s"):
        with pytest.raises(ValueError, match=r": at most 3650d \(10 years\)$"):
            parse_duration(text)

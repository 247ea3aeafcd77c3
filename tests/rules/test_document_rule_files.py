"""Rule files of the document-level detectors (``match``, ``values``, ``new_value``, ``change``):
each mistake, alone in its file, is reported at its position with its exact message; lists load
inline and from a file next to the rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.rules.document_specs import ChangeSpec, MatchSpec, NewValueSpec
from watcher.rules.loader import load_rules

HEAD = "name: r\nsource: api\n"
MISTAKES = {
    "values-both-lists": (
        "values: {field: tenant, allow: [a], deny: [b]}\n",
        "3:25: 'values' takes exactly one of 'allow' or 'deny'",
    ),
    "values-empty-list": (
        "values: {field: tenant, deny: []}\n",
        "3:31: the list is empty: give at least one value (or {file: name})",
    ),
    "values-missing-file": (
        "values: {field: tenant, deny: {file: gone.txt}}\n",
        "3:25: list file gone.txt: cannot read file: No such file or directory",
    ),
    "values-file-not-utf8": (
        "values: {field: tenant, deny: {file: latin1.txt}}\n",
        "3:25: list file latin1.txt:2:2: cannot read file: it is not UTF-8 text (byte 0xe9)",
    ),
    "values-file-empty": (
        "values: {field: tenant, deny: {file: comments.txt}}\n",
        "3:25: list file comments.txt: no values in it (one value per line, # comments)",
    ),
    "values-missing-with-deny": (
        "values: {field: tenant, deny: [a], missing: alert}\n",
        "3:36: 'missing' applies to 'allow': a document without the field is never denied",
    ),
    "values-list-of-maps": (
        "values: {field: tenant, deny: [{a: 1}]}\n",
        "3:31: list entries are strings, numbers or booleans, got {'a': 1}",
    ),
    "match-zero": (
        "match: {min: 0}\n",
        "3:14: 'match.min' must be >= 1, got 0",
    ),
    "match-with-signal": (
        "match: {}\nsignal: {percentile: {field: latency_ms, q: 99}}\n",
        "4:1: 'signal' does not apply to a 'match' rule: it counts documents",
    ),
    "new-value-no-fields": (
        "new_value: {fields: []}\n",
        "3:21: 'new_value.fields' needs at least 1 item",
    ),
    "new-value-zero-lookback": (
        "new_value: {fields: [user], lookback: 0s}\n",
        "3:29: 'lookback' must be longer than 0s, got 0s",
    ),
    "new-value-field-twice": (
        "new_value: {fields: [user, user]}\n",
        "3:13: 'fields' names a field twice",
    ),
    "change-no-by": (
        "change: {field: route}\n",
        "3:1: missing required key 'by'",
    ),
    "change-by-holds-field": (
        "change: {field: route, by: [route]}\n",
        "3:24: 'by' is the key whose 'route' changes: it cannot hold 'route'",
    ),
    "change-other-group-by": (
        "group_by: [tenant]\nchange: {field: route, by: [client]}\n",
        "1:1: 'change.by' (client) is the rule's key: remove 'group_by' (tenant)",
    ),
    "two-detectors": (
        "match: {}\nnew_value: {fields: [user]}\n",
        "1:1: a rule has exactly one detector of threshold, flatline, spike, drift, validity, "
        "forecast, canary, match, values, new_value, change; got match, new_value",
    ),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "latin1.txt").write_bytes(b"acme\nd\xe9mo\n")
    (tmp_path / "comments.txt").write_text("# nobody yet\n\n")
    (tmp_path / "blocked.txt").write_text("# blocked tenants\nevil  # since March\n\nmallory\n")
    return tmp_path


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_reported_at_its_position(folder: Path, name: str) -> None:
    body, expected = MISTAKES[name]
    path = folder / f"{name}.yaml"
    path.write_text(HEAD + body)
    ruleset = load_rules([path], None)
    assert [str(error) for error in ruleset.errors] == [f"{path}:{expected}"]
    assert ruleset.rules == []


def test_the_four_detectors_load_with_their_defaults(folder: Path) -> None:
    path = folder / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: any, source: api, where: {status: 500}, match: {}}\n"
        "  - {name: deny, source: api, values: {field: tenant, deny: {file: blocked.txt}}}\n"
        "  - {name: allow, source: api, values: {field: tenant, allow: [a, 7], missing: alert}}\n"
        "  - {name: new, source: api, new_value: {fields: [user, route]}}\n"
        "  - {name: changed, source: api, change: {field: route, by: [tenant]}}\n"
    )
    ruleset = load_rules([path], None)
    assert ruleset.errors == []
    match, deny, allow, new, changed = ruleset.rules
    assert match.match == MatchSpec(min=1)
    assert deny.values is not None
    assert deny.values.listed.values == ("evil", "mallory")
    assert deny.read_files() == [folder / "blocked.txt"]  # an edited list is a reload
    assert allow.values is not None
    assert allow.values.listed.values == ("a", 7)
    assert new.new_value == NewValueSpec(fields=("user", "route"), lookback=timedelta(days=30))
    assert changed.group_by == ("tenant",)
    assert changed.change == ChangeSpec(field="route", by=("tenant",), lookback=timedelta(days=1))

"""An overrides file is watched like a baseline profile: editing it reloads the rule that reads it."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.daemon import write_config
from watcher.cli.common import load
from watcher.process.reload import Reloader

QUOTA = {
    "name": "tenant-429",
    "source": "app",
    "group_by": ["tenant"],
    "signal": {"ratio": {"of": {"status": 429}}},
    "threshold": {"above": 0.1},
    "overrides_file": "quotas.csv",
}


def test_an_edited_overrides_file_reloads_the_rule_with_the_new_bounds(tmp_path: Path) -> None:
    path = write_config(tmp_path, [QUOTA])
    quotas = tmp_path / "rules" / "quotas.csv"
    quotas.write_text("tenant,above\nbig,0.5\n")
    loaded = load(path)
    reloader = Reloader(path, loaded.config, loaded.files, loaded.rules)
    assert [reloader.due(), reloader.due()] == [False, False]

    quotas.write_text("tenant,above\nbig,0.9\nsmall,0.01\n")

    assert [reloader.due(), reloader.due()] == [False, True]
    reload = reloader.load({rule.name: rule for rule in loaded.rules})
    assert reload.changes.changed == ["tenant-429"]
    assert reload.changes.retired == []  # same identity: its incidents are kept
    (rule,) = reload.changes.rules
    assert (rule.threshold_for({"tenant": "big"}).above, rule.threshold_for({"tenant": "small"}).above) == (
        0.9,
        0.01,
    )


def test_a_broken_overrides_file_keeps_the_rule_as_it_was(tmp_path: Path) -> None:
    path = write_config(tmp_path, [QUOTA])
    quotas = tmp_path / "rules" / "quotas.csv"
    quotas.write_text("tenant,above\nbig,0.5\n")
    loaded = load(path)
    reloader = Reloader(path, loaded.config, loaded.files, loaded.rules)

    quotas.write_text("tenant,above\nbig,lots\n")

    assert [reloader.due(), reloader.due()] == [False, True]
    reload = reloader.load({rule.name: rule for rule in loaded.rules})
    (error,) = reload.changes.errors
    assert str(error).endswith("quotas.csv:2: 'above' must be a number, got 'lots'")
    (rule,) = reload.changes.rules
    assert rule.threshold_for({"tenant": "big"}).above == 0.5

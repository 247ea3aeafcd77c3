"""``FileWatch`` on real files: edits, new and deleted rule files, ConfigMap symlink swaps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watcher.rules.watch import FileWatch, snapshot

RULE = "name: api-5xx\nsource: ml-api\nthreshold: {above: 0.05}\n"


def looks(watch: FileWatch, times: int = 3) -> list[bool]:
    """What ``times`` polls in a row report."""
    return [watch.changed() for _ in range(times)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    (rules / "team").mkdir(parents=True)
    (rules / "api-5xx.yaml").write_text(RULE)
    (rules / "team" / "latency.yml").write_text(RULE.replace("api-5xx", "latency"))
    return rules


def test_nothing_changed_reports_nothing(folder: Path) -> None:
    assert looks(FileWatch([folder])) == [False, False, False]


def test_an_edit_is_reported_once_after_it_settled(folder: Path) -> None:
    watch = FileWatch([folder])
    (folder / "api-5xx.yaml").write_text(RULE.replace("0.05", "0.5"))
    assert looks(watch) == [False, True, False]


def test_an_edit_still_being_written_waits(folder: Path) -> None:
    watch = FileWatch([folder])
    path = folder / "team" / "latency.yml"
    path.write_text("name: lat")
    assert watch.changed() is False
    path.write_text(RULE.replace("api-5xx", "latency") + "every: 5m\n")
    assert looks(watch) == [False, True, False]


def test_a_touch_is_a_change(folder: Path) -> None:
    """Only a hint: the daemon compares the rules and finds nothing to do."""
    watch = FileWatch([folder])
    path = folder / "api-5xx.yaml"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert looks(watch) == [False, True, False]


def test_an_editor_saving_by_rename_is_a_change(folder: Path) -> None:
    watch = FileWatch([folder])
    saved = folder / "api-5xx.yaml.tmp"
    saved.write_text(RULE)  # same size, new inode
    assert looks(watch, 2) == [False, False]  # not a rule file (yet)
    os.replace(saved, folder / "api-5xx.yaml")
    assert looks(watch) == [False, True, False]


def test_a_new_rule_file_in_a_subfolder_is_seen(folder: Path) -> None:
    watch = FileWatch([folder])
    (folder / "team" / "new").mkdir()
    (folder / "team" / "new" / "drift.yaml").write_text(RULE.replace("api-5xx", "drift"))
    assert looks(watch) == [False, True, False]


def test_a_deleted_rule_file_is_seen(folder: Path) -> None:
    watch = FileWatch([folder])
    (folder / "team" / "latency.yml").unlink()
    assert looks(watch) == [False, True, False]


def test_a_watched_file_deleted_and_restored_is_seen(tmp_path: Path) -> None:
    config = tmp_path / "watcher.yaml"
    config.write_text("sources: {}\n")
    watch = FileWatch([config, tmp_path / "missing-rules"])
    config.unlink()
    assert looks(watch) == [False, True, False]
    config.write_text("sources: {app: {store: embedded}}\n")
    assert looks(watch) == [False, True, False]


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.yaml",
        ".git/rules.yaml",
        "team/.swap/x.yml",
        "notes.txt",
        "api-5xx.yaml~",
        "x.yaml.swp",
        "x.json",
    ],
)
def test_files_the_loader_skips_are_not_watched(folder: Path, name: str) -> None:
    watch = FileWatch([folder])
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RULE)
    assert looks(watch) == [False, False, False]
    assert path not in snapshot([folder])


def test_without_paths_nothing_is_ever_reported(folder: Path) -> None:
    watch = FileWatch([])
    (folder / "api-5xx.yaml").unlink()
    assert looks(watch) == [False, False, False]


def _link(target: str, link: Path) -> None:
    """Point ``link`` at ``target`` atomically, as kubelet does (a new symlink renamed over)."""
    fresh = link.with_name(link.name + "_tmp")
    fresh.symlink_to(target)
    os.replace(fresh, link)


def test_a_kubernetes_configmap_update_is_seen(tmp_path: Path) -> None:
    """kubelet writes a new timestamped folder, swaps the ``..data`` symlink to it and deletes
    the old one; the rule files are symlinks through ``..data`` and never change themselves."""
    mount = tmp_path / "rules"
    (mount / "..2026_a").mkdir(parents=True)
    (mount / "..2026_a" / "api-5xx.yaml").write_text(RULE)
    _link("..2026_a", mount / "..data")
    (mount / "api-5xx.yaml").symlink_to("..data/api-5xx.yaml")
    watch = FileWatch([mount])
    assert list(snapshot([mount])) == [mount / "api-5xx.yaml"]  # ..data and ..2026_a are hidden
    assert looks(watch) == [False, False, False]

    (mount / "..2026_b").mkdir()
    (mount / "..2026_b" / "api-5xx.yaml").write_text(RULE.replace("0.05", "0.07"))  # same size
    _link("..2026_b", mount / "..data")
    (mount / "..2026_a" / "api-5xx.yaml").unlink()
    (mount / "..2026_a").rmdir()
    assert looks(watch) == [False, True, False]


def test_watching_new_paths_starts_from_what_they_hold_now(tmp_path: Path, folder: Path) -> None:
    other = tmp_path / "other-rules"
    other.mkdir()
    (other / "a.yaml").write_text(RULE)
    watch = FileWatch([folder])
    (other / "a.yaml").write_text(RULE + "every: 5m\n")
    watch.watch([other])
    assert watch.paths == [other]
    assert looks(watch) == [False, False, False]  # the state at watch() is the baseline
    (folder / "api-5xx.yaml").unlink()  # no longer watched
    assert looks(watch) == [False, False, False]
    (other / "b.yaml").write_text(RULE)
    assert looks(watch) == [False, True, False]

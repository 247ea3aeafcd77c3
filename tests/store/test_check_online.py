"""`watcher check --online` against a real OpenSearch-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.store.conftest import SearchServer
from watcher.cli import main

pytestmark = pytest.mark.search


def write(tmp_path: Path, url: str, index: str) -> Path:
    (tmp_path / "rules").mkdir()
    rule = {
        "name": "errors",
        "source": "logs",
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
        "threshold": {"above": 0.05},
    }
    (tmp_path / "rules" / "errors.yaml").write_text(yaml.safe_dump(rule))
    config = {
        "sources": {"logs": {"store": "opensearch", "hosts": [url], "index": index}},
        "rules": ["rules"],
    }
    path = tmp_path / "watcher.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_missing_index_pattern_fails_the_online_check(
    tmp_path: Path, search_server: SearchServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, search_server.url, "watcher-online-missing-*")
    assert main(["check", "--config", str(config), "--online"]) == 1
    out = capsys.readouterr().out
    assert "source 'logs': index pattern 'watcher-online-missing-*' matches no index" in out
    assert "online: 1 problems" in out


def test_mapped_fields_pass_the_online_check(
    tmp_path: Path, search_server: SearchServer, capsys: pytest.CaptureFixture[str]
) -> None:
    search_server.create_index(
        "watcher-online-ok",
        {"@timestamp": {"type": "date"}, "status": {"type": "integer"}},
        [{"@timestamp": "2026-01-05T08:00:00Z", "status": 200}],
    )
    config = write(tmp_path, search_server.url, "watcher-online-ok")
    assert main(["check", "--config", str(config), "--online"]) == 0
    assert "online: every rule's fields are mapped" in capsys.readouterr().out

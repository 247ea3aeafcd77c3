"""The shipped route trees do what their comments say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def configs(tmp_path: Path) -> list[Path]:
    k8s = next(d for d in yaml.safe_load_all((ROOT / "deploy/k8s/configmap.yaml").read_text()) if d)
    from_k8s = tmp_path / "watcher.yaml"
    from_k8s.write_text(k8s["data"]["watcher.yaml"])
    return [ROOT / "deploy" / "watcher.yaml", from_k8s]


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # "Critical incidents page the on-call channel and keep going to ml-slack."
        ("severity=critical", "oncall-slack,ml-slack"),
        ("severity=info", "log"),
        ("severity=warning", "ml-slack"),
    ],
)
def test_critical_alerts_keep_going_to_ml_slack(tmp_path: Path, labels: str, receivers: str) -> None:
    for config in configs(tmp_path):
        done = subprocess.run(
            [sys.executable, "-m", "watcher", "routes", "test", "-c", str(config), labels],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},  # no secrets: routes need none
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, receivers + "\n", ""), config

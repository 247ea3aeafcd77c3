"""``watcher check`` reports template mistakes (files, annotations, overrides) as path:line:col."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from watcher.cli import check
from watcher.templates import TemplateProblem, Templates

CONFIG = """\
sources:
  local: {store: embedded}
receivers:
  team:
    webhook: {url: "https://hooks.example.com/${HOOK_TOKEN:-s3cr3t-token}", secret: "hmac-s3cr3t"}
    templates: {firing: missing.j2}
route: {receiver: team}
"""
RULE = """\
name: five-xx
source: local
threshold: {above: 0.05}
annotations:
  summary: "5xx at {{ vlaue | percent }}"
templates: {slack: slack-five-xx.md.j2}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "watcher.yaml").write_text(CONFIG)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "five-xx.yaml").write_text(RULE)
    (tmp_path / "templates" / "slack").mkdir(parents=True)
    (tmp_path / "templates" / "slack" / "firing.md.j2").write_text("{{ rule }}\n{{ sevrity }}\n")
    (tmp_path / "templates" / "slack-five-xx.md.j2").write_text("{{ value | precent }}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_template_mistakes_are_listed_where_they_are_written(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check.run(argparse.Namespace(config=Path("watcher.yaml"), paths=[]))

    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines() == [
        "rules/five-xx.yaml:5:12: annotation 'summary': unknown variable 'vlaue' (did you mean 'value'?)",
        "rules/five-xx.yaml:6:20: slack-five-xx.md.j2:1: No filter named 'precent'.",
        "templates/slack/firing.md.j2:2:1: unknown variable 'sevrity' (did you mean 'severity'?)",
        "templates/slack-five-xx.md.j2:1:1: No filter named 'precent'.",
        "watcher.yaml:6:25: missing.j2: template file not found",
        "5 errors in 4 of 4 files; 1 rule valid",
    ]
    assert "s3cr3t" not in out


def test_the_shipped_templates_are_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).parents[2] / "watcher.yaml"
    assert check.run(argparse.Namespace(config=config, paths=[])) == 0
    assert capsys.readouterr().out.startswith("OK: ")


SHARED = """\
rules:
{entries}
"""
ENTRY = """\
  - name: {name}
    source: local
    threshold: {{above: 0.05}}
    annotations:
      summary: "{summary}"
    templates: {{slack: {template}}}
"""


def shared_rules(folder: Path, names: list[str], summary: str, template: str) -> None:
    entries = "".join(ENTRY.format(name=name, summary=summary, template=template) for name in names)
    (folder / f"{names[0]}.yaml").write_text(SHARED.format(entries=entries.rstrip("\n")))


def test_rules_sharing_a_mistake_each_get_it_at_their_own_place(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up and ``watcher check`` compile each distinct annotation and template once (1,000
    rules sharing one took ~2.5 s), yet every rule using a broken one is told at its line."""
    (project / "rules" / "five-xx.yaml").unlink()
    (project / "templates" / "slack-ok.md.j2").write_text("{{ rule }}: {{ value | percent }}")
    good = [f"good-{i:03d}" for i in range(300)]
    shared_rules(project / "rules", good, "{{ value | percent }}", "slack-ok.md.j2")
    shared_rules(project / "rules", ["bad-1", "bad-2"], "{{ vlaue }}", "slack-five-xx.md.j2")
    checked: list[str] = []
    real = Templates._check_source

    def counted(self: Templates, name: str, source: str, known: frozenset[str]) -> list[TemplateProblem]:
        checked.append(source)
        return real(self, name, source, known)

    monkeypatch.setattr(Templates, "_check_source", counted)
    assert check.run(argparse.Namespace(config=Path("watcher.yaml"), paths=[])) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("rules/")] == [
        "rules/bad-1.yaml:6:16: annotation 'summary': unknown variable 'vlaue' (did you mean 'value'?)",
        "rules/bad-1.yaml:7:24: slack-five-xx.md.j2:1: No filter named 'precent'.",
        "rules/bad-1.yaml:12:16: annotation 'summary': unknown variable 'vlaue' (did you mean 'value'?)",
        "rules/bad-1.yaml:13:24: slack-five-xx.md.j2:1: No filter named 'precent'.",
    ]
    assert checked.count("{{ value | percent }}") == 1

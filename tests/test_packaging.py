"""The wheel: what ``pip install`` gives an operator. It must carry the default templates, or an
installed watcher renders no notification at all; and nothing of the repository besides the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from watcher.templates import DEFAULT_FOLDER

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
PACKAGED = "watcher/_templates"

# Run with an unpacked wheel first on the path: which templates does that watcher use, and do they load?
PROBE = """
import json, sys, watcher
from watcher.templates import DEFAULT_FOLDER, Templates
problems = [str(p) for p in Templates().check(sys.argv[1:])]
print(json.dumps({"module": watcher.__file__, "folder": str(DEFAULT_FOLDER), "problems": problems}))
"""


def template_files() -> dict[str, bytes]:
    """The repository's default templates by path inside the folder."""
    return {p.relative_to(TEMPLATES).as_posix(): p.read_bytes() for p in TEMPLATES.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "-w", str(out)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("watcher-*.whl")
    return path


def test_the_wheel_ships_the_default_templates_inside_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name: archive.read(name) for name in archive.namelist()}
    expected = {f"{PACKAGED}/{name}": content for name, content in template_files().items()}
    assert expected
    assert {name: shipped.get(name) for name in expected} == expected
    assert "watcher/py.typed" in shipped


def test_the_wheel_holds_only_the_package_and_its_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"watcher", "watcher-0.1.0.dist-info"}
    assert [name for name in names if "__pycache__" in name or name.endswith(".pyc")] == []


def test_an_installed_wheel_uses_its_own_templates_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    names = sorted(name for name in template_files() if name.endswith(".j2"))
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *names],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found["module"]).resolve() == (site / "watcher" / "__init__.py").resolve()
    assert Path(found["folder"]) == (site / PACKAGED).resolve()
    assert found["problems"] == []


def test_a_checkout_reads_the_repository_templates() -> None:
    assert DEFAULT_FOLDER == TEMPLATES

"""``watcher check`` finds at check time what used to fail only at run or send time: the HTTP
listen address, receiver URLs, empty secrets, annotations the template sandbox always refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def check(folder: Path, config: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    (folder / "watcher.yaml").write_text(config)
    (folder / "rules").mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "-c", "watcher.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout.splitlines()[:-1]  # the errors, without the summary


SOURCES = "sources:\n  local: {store: embedded}\n"


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        (
            "127.0.0.1:99999",
            "invalid http listen address '127.0.0.1:99999': use host:port, e.g. 127.0.0.1:9464",
        ),
        ("localhost", "invalid http listen address 'localhost': use host:port, e.g. 127.0.0.1:9464"),
    ],
)
def test_a_listen_address_that_cannot_be_bound(tmp_path: Path, listen: str, message: str) -> None:
    assert check(tmp_path, SOURCES + f"http: {{listen: '{listen}'}}\n") == (
        1,
        [f"watcher.yaml:3:16: {message}"],
    )


RECEIVER = SOURCES + "receivers:\n  r: {KIND: SETTINGS}\nroute: {receiver: r}\n"


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("slack", "{webhook_url: not-a-url}", "slack 'webhook_url' must start with https:// or http://"),
        ("slack", "{webhook_url: 'https://'}", "slack 'webhook_url' has no host (expected e.g. https://hooks.example.com/...)"),
        ("slack", "{token: '', channel: '#a'}", "slack 'token' is empty"),
        ("webhook", "{url: 'https://'}", "webhook 'url' has no host (expected e.g. https://hooks.example.com/...)"),
        ("webhook", "{url: 'https://x:port/'}", "webhook 'url' is not a valid URL"),
        ("webhook", "{url: 'ftp://x/'}", "webhook 'url' must start with https:// or http://"),
    ],
)  # fmt: skip
def test_receiver_urls_need_a_scheme_and_a_host(
    tmp_path: Path, kind: str, settings: str, message: str
) -> None:
    code, errors = check(tmp_path, RECEIVER.replace("KIND", kind).replace("SETTINGS", settings))
    assert (code, len(errors)) == (1, 1)
    assert errors[0].endswith(f": {message}")


def test_an_empty_secret_is_an_error_unless_written_optional(tmp_path: Path) -> None:
    config = (
        SOURCES + "receivers:\n"
        "  a: {slack: {token: '${T}', channel: '#a'}}\n"
        "  b: {webhook: {url: 'https://example.com/${PATH_PART:-}'}}\n"
        "route: {receiver: a}\n"
    )
    assert check(tmp_path, config, {"T": "", "PATH_PART": ""}) == (
        1,
        ["watcher.yaml:4:22: environment variable T is empty: set it, or write ${T:-} if it may be empty"],
    )
    assert check(tmp_path, config, {"T": "xoxb-1", "PATH_PART": ""})[0] == 0


def test_the_env_example_as_shipped_is_refused(tmp_path: Path) -> None:
    """deploy/watcher.env.example loaded as is: its secrets are empty."""
    env = {}
    for line in (ROOT / "deploy" / "watcher.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    config = (ROOT / "deploy" / "watcher.yaml").read_text().replace("/etc/watcher/", "")
    code, errors = check(tmp_path, config, env)
    assert code == 1
    assert [error.split(": ", 1)[1] for error in errors] == [
        f"environment variable {name} is empty: set it, or write ${{{name}:-}} if it may be empty"
        for name in ("ES_API_KEY", "OPENSEARCH_PASSWORD", "SLACK_BOT_TOKEN", "SLACK_ONCALL_WEBHOOK_URL")
    ]


def test_an_annotation_the_sandbox_always_refuses(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "name: r\nsource: local\nevery: 1m\nwindow: 5m\nsignal: {count: {}}\nthreshold: {above: 1}\n"
        "annotations:\n  summary: \"{{ ''.__class__ }}\"\n"
    )
    assert check(tmp_path, SOURCES) == (
        1,
        ["rules/r.yaml:8:12: annotation 'summary': the template sandbox refuses attribute '__class__': "
         "it never renders"],
    )  # fmt: skip

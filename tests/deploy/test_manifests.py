"""deploy/: the systemd unit, the image, docker-compose and the Kubernetes manifests hold together.

Each file is parsed and checked for what an operator relies on; where the real tool is installed
(systemd-analyze, docker compose, kubectl) it validates the file too, otherwise the test is skipped
with the command that installs it. A tool named in WATCHER_REQUIRE_TOOLS (comma-separated; CI sets
it) must be there: its absence fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from watcher.process.health import Health
from watcher.process.http import start_http_server
from watcher.process.metrics import Metrics
from watcher.rules.loader import load_config, load_rules

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SECRET_ENV = {
    "ES_API_KEY": "k",
    "OPENSEARCH_PASSWORD": "p",
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_ONCALL_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
}
_REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The external tools the suite knows (postgres: the server tests/conftest.py starts for the state
# tests); WATCHER_REQUIRE_TOOLS may name only these.
TOOLS = ("systemd-analyze", "kubectl", "docker-compose", "postgres")


def required_tools() -> set[str]:
    return {name.strip() for name in os.environ.get("WATCHER_REQUIRE_TOOLS", "").split(",") if name.strip()}


def tool_missing(tool: str, why: str) -> NoReturn:
    """Skip the test, unless the run requires `tool` (CI does): then a missing tool is a failure."""
    if tool in required_tools():
        pytest.fail(f"{tool} is required by WATCHER_REQUIRE_TOOLS but {why}")
    pytest.skip(why)


def k8s_objects() -> list[dict[str, Any]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in k8s_objects() if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container() -> dict[str, Any]:
    (only,) = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def unit_directives() -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: sections, and keys that may repeat (configparser cannot keep repeats)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = ""
    for raw in (DEPLOY / "watcher.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[current][key.strip()].append(value.strip())
    return sections


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def test_required_tools_are_ones_this_module_checks() -> None:
    # A misspelt name would otherwise require nothing and let the check skip silently.
    assert required_tools() <= set(TOOLS), f"WATCHER_REQUIRE_TOOLS names unknown tools; known: {TOOLS}"


# --------------------------------------------------------------------------- every file parses


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(DEPLOY) for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
)
def test_yaml_parses(path: Path) -> None:
    assert [doc for doc in yaml.safe_load_all((DEPLOY / path).read_text()) if doc]


# --------------------------------------------------------------------------- watcher.yaml and rules


def test_production_config_and_rules_load(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(DEPLOY / "watcher.yaml", SECRET_ENV)
    assert {name: source.store for name, source in config.sources.items()} == {
        "ml-api": "elasticsearch",
        "gateway": "opensearch",
    }
    assert config.http.listen == "127.0.0.1:9464"  # loopback unless the environment says otherwise
    assert str(config.state.path) == "/var/lib/watcher/state.sqlite"
    ruleset = load_rules([DEPLOY / "rules"], config)
    assert [str(error) for error in ruleset.errors] == []
    assert len(ruleset.rules) == 4


def test_compose_config_and_rules_load() -> None:
    config = load_config(DEPLOY / "compose" / "watcher.yaml", {})
    assert config.http.listen == "0.0.0.0:9464"
    ruleset = load_rules([DEPLOY / "rules"], config)
    assert [str(error) for error in ruleset.errors] == []


# --------------------------------------------------------------------------- Kubernetes


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_single_replica_recreated_never_rolled() -> None:
    spec = k8s("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_probes_hit_healthz_and_readyz_on_the_container_port() -> None:
    app = container()
    port_names = {port["name"] for port in app["ports"]}
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["port"] in port_names
    env = {item["name"]: item.get("value") for item in app["env"]}
    assert env["WATCHER_HTTP_LISTEN"] == "0.0.0.0:9464"  # the kubelet probes the pod IP


def test_state_on_the_claimed_volume() -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    claim = k8s("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    state_volume = volumes[mounts["/var/lib/watcher"]]
    assert state_volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]  # PVC writable


def test_secret_is_referenced_and_provides_every_required_variable() -> None:
    secret = k8s("Secret")
    refs = [item["secretRef"]["name"] for item in container()["envFrom"]]
    assert refs == [secret["metadata"]["name"]]
    provided = set(secret["stringData"]) | {item["name"] for item in container()["env"]}
    required = set(_REQUIRED_VAR.findall(json.dumps(yaml.safe_load((DEPLOY / "watcher.yaml").read_text()))))
    assert required <= provided


def test_config_maps_mirror_deploy_files_and_are_mounted() -> None:
    config = k8s("ConfigMap", "watcher-config")["data"]
    assert config == {"watcher.yaml": (DEPLOY / "watcher.yaml").read_text()}
    rules = k8s("ConfigMap", "watcher-rules")["data"]
    assert rules == {p.name: p.read_text() for p in sorted((DEPLOY / "rules").glob("*.yaml"))}
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {
        volumes[m["name"]]["configMap"]["name"]: m["mountPath"]
        for m in container()["volumeMounts"]
        if "configMap" in volumes[m["name"]]
    }
    assert mounted == {
        "watcher-config": "/etc/watcher/config",
        "watcher-rules": "/etc/watcher/rules",
        "watcher-templates": "/etc/watcher/templates",
    }
    assert not [m for m in container()["volumeMounts"] if "subPath" in m]  # subPath stops updates
    assert (
        container()["args"][container()["args"].index("--config") + 1] == "/etc/watcher/config/watcher.yaml"
    )


def test_the_config_the_pod_sees_is_valid(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text(k8s("ConfigMap", "watcher-config")["data"]["watcher.yaml"])
    environ = {
        **k8s("Secret")["stringData"],
        **{item["name"]: item["value"] for item in container()["env"]},
    }
    config = load_config(tmp_path / "watcher.yaml", environ)
    assert config.http.listen == "0.0.0.0:9464"


def test_runs_unprivileged() -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    hardening = container()["securityContext"]
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["readOnlyRootFilesystem"] is True


def test_kubectl_kustomize_builds() -> None:
    if not shutil.which("kubectl"):
        tool_missing("kubectl", "kubectl not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc)
    assert kinds == sorted(o["kind"] for o in k8s_objects())


# --------------------------------------------------------------------------- systemd


def test_unit_has_the_required_directives() -> None:
    unit = unit_directives()
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["DynamicUser"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["StateDirectory"] == ["watcher"]
    assert service["EnvironmentFile"] == ["/etc/watcher/watcher.env"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert re.fullmatch(r"\d+s", service["WatchdogSec"][0])
    assert "run --config /etc/watcher/watcher.yaml" in service["ExecStart"][0]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_state_directory_matches_the_config_state_path() -> None:
    config = load_config(DEPLOY / "watcher.yaml", SECRET_ENV)
    assert config.state.path.parent == Path("/var/lib") / unit_directives()["Service"]["StateDirectory"][0]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        tool_missing("systemd-analyze", "systemd-analyze not installed (apt-get install -y systemd)")
    # verify insists that ExecStart's binary exists; point it at a stand-in for /opt/watcher's venv.
    stand_in = tmp_path / "watcher"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "watcher.service"
    text = (DEPLOY / "watcher.service").read_text()
    assert "/opt/watcher/bin/watcher " in text
    unit.write_text(text.replace("/opt/watcher/bin/watcher ", f"{stand_in} "))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown or misspelt directives are only warnings; any output about the unit is a failure.
    assert (result.returncode, result.stderr.strip()) == (0, "")


# --------------------------------------------------------------------------- the image


def test_image_is_slim_python_and_not_root() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for word, args in instructions if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert "WATCHER_HTTP_LISTEN=0.0.0.0:9464" in env
    cmd = json.loads(next(args for word, args in instructions if word == "CMD"))
    copied = [args.split()[-1] for word, args in instructions if word == "COPY"]
    assert cmd[cmd.index("--config") + 1] in copied


def test_files_the_image_copies_exist() -> None:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    sources = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            sources += words[1:-1]
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert missing == []


def test_healthcheck_command_follows_healthz() -> None:
    (spec,) = [args for word, args in dockerfile_instructions() if word == "HEALTHCHECK"]
    command = json.loads(spec[spec.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    now = [datetime(2026, 1, 5, tzinfo=UTC)]
    health = Health(clock=lambda: now[0], heartbeat_max_age=timedelta(minutes=1))
    server = start_http_server("127.0.0.1:0", Metrics(process=False), health)
    try:
        environ = {**os.environ, "WATCHER_HEALTH_URL": server.url + "/healthz"}
        run = [sys.executable, *command[1:]]
        assert subprocess.run(run, env=environ, timeout=30, check=False).returncode == 0
        now[0] += timedelta(minutes=2)  # the scheduler stopped beating
        assert subprocess.run(run, env=environ, capture_output=True, timeout=30, check=False).returncode == 1
    finally:
        server.close()


# --------------------------------------------------------------------------- docker compose


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_services_and_mounts() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"elasticsearch", "kibana", "watcher"}
    watcher = compose["services"]["watcher"]
    assert watcher["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    targets = {volume.split(":")[1] for volume in watcher["volumes"]}
    assert {"/etc/watcher/watcher.yaml", "/etc/watcher/rules", "/var/lib/watcher"} <= targets
    for volume in watcher["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), source


def compose_config(path: Path, environ: dict[str, str] | None = None) -> None:
    """``docker compose config`` accepts the file (with ``environ`` added to the environment)."""
    command = compose_command()
    if command is None:
        tool_missing(
            "docker-compose", "neither `docker compose` (the compose plugin) nor docker-compose is installed"
        )
    result = subprocess.run(
        [*command, "-f", str(path), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(environ or {})},
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_config() -> None:
    compose_config(DEPLOY / "docker-compose.yml")

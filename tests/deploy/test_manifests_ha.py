"""deploy/ for high availability: compose with PostgreSQL and 3 replicas, the Kubernetes overlay.

What an operator relies on: three replicas of one config sharing a PostgreSQL state, the state URL
(password included) only ever from the environment (a Secret, compose's environment), the same
rules and receivers as the single-node deployment, a PodDisruptionBudget that keeps two replicas
up. The overlay is rendered with ``kubectl kustomize`` where it is installed (skipped otherwise,
unless WATCHER_REQUIRE_TOOLS names it, as in tests/deploy/test_manifests.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_manifests import DEPLOY, SECRET_ENV, compose_config, tool_missing
from watcher.config import Config
from watcher.config.ha import problems
from watcher.rules.loader import load_config, load_rules

OVERLAY = DEPLOY / "k8s-ha"
COMPOSE = DEPLOY / "compose-ha.yaml"
STATE_URL = "postgresql://watcher:pw-from-env@postgres:5432/watcher"
# A postgresql:// URL whose password is written out (not a ${VAR}, nor the PASSWORD of a comment's
# example): a secret in plain text.
_PLAIN_PASSWORD = re.compile(r"postgres(?:ql)?://[^:/@\s]+:(?!\$\{|PASSWORD@)[^@\s]+@")


def config(path: Path) -> Config:
    return load_config(path, {**SECRET_ENV, "WATCHER_STATE_URL": STATE_URL})


def without_state(loaded: Config) -> dict[str, Any]:
    return loaded.model_dump(exclude={"state", "ha"})


@pytest.mark.parametrize("path", [DEPLOY / "compose" / "watcher-ha.yaml", OVERLAY / "watcher.yaml"])
def test_the_ha_configs_share_a_postgresql_state_and_differ_from_their_single_node_twin_in_nothing_else(
    path: Path,
) -> None:
    single = DEPLOY / ("compose/watcher.yaml" if path.parent.name == "compose" else "watcher.yaml")
    loaded = config(path)
    assert loaded.state.url == STATE_URL
    assert loaded.ha is not None
    assert loaded.ha.replicas == 3
    assert problems(loaded) == []  # no embedded source, a PostgreSQL state
    assert without_state(loaded) == without_state(config(single))
    assert [str(error) for error in load_rules([DEPLOY / "rules"], loaded).errors] == []
    assert "${WATCHER_STATE_URL}" in path.read_text()


@pytest.mark.parametrize(
    "path",
    sorted([COMPOSE, *OVERLAY.glob("*.yaml"), DEPLOY / "compose" / "watcher-ha.yaml"]),
    ids=lambda path: str(path.relative_to(DEPLOY)),
)
def test_no_password_is_written_in_plain_text(path: Path) -> None:
    text = path.read_text()
    if path.name == "secret-state.yaml":  # the one place for it: a placeholder, to be replaced
        [url] = yaml.safe_load(text)["stringData"].values()
        assert ":change-me@" in url
        return
    assert _PLAIN_PASSWORD.findall(text) == []


# --------------------------------------------------------------------------- docker compose


def test_compose_runs_three_replicas_on_the_bundled_postgresql() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"postgres", "elasticsearch", "watcher"}
    watcher, postgres = compose["services"]["watcher"], compose["services"]["postgres"]
    assert watcher["deploy"]["replicas"] == 3
    assert "ports" not in watcher  # three replicas cannot bind one host port
    assert watcher["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    # The password is required from the environment, the same for the server and the replicas.
    password = postgres["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${WATCHER_STATE_PASSWORD:?")
    assert (
        watcher["environment"]["WATCHER_STATE_URL"]
        == f"postgresql://watcher:{password}@postgres:5432/watcher"
    )
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in watcher["volumes"]}
    assert mounts["/etc/watcher/watcher.yaml"] == "./compose/watcher-ha.yaml"
    for source in mounts.values():
        assert (DEPLOY / source).exists(), source


def test_docker_compose_config_of_the_ha_stack() -> None:
    compose_config(COMPOSE, {"WATCHER_STATE_PASSWORD": "from-the-shell"})


# --------------------------------------------------------------------------- Kubernetes


def overlay_file(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((OVERLAY / name).read_text())
    return document


def test_the_deployment_runs_three_rolling_replicas_with_the_state_url_from_a_secret() -> None:
    patch = overlay_file("deployment.yaml")
    assert patch["spec"]["replicas"] == 3 == config(OVERLAY / "watcher.yaml").ha.replicas  # type: ignore[union-attr]
    assert patch["spec"]["strategy"]["type"] == "RollingUpdate"
    [app] = patch["spec"]["template"]["spec"]["containers"]
    [url] = [item for item in app["env"] if item["name"] == "WATCHER_STATE_URL"]
    secret = overlay_file("secret-state.yaml")
    assert url["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "url"}
    assert set(secret["stringData"]) == {"url"}
    kustomization = overlay_file("kustomization.yaml")
    assert {"../k8s", "secret-state.yaml", "pdb.yaml"} <= set(kustomization["resources"])
    assert [generator["files"] for generator in kustomization["configMapGenerator"]] == [["watcher.yaml"]]


def test_the_disruption_budget_keeps_two_of_the_three_replicas() -> None:
    budget = overlay_file("pdb.yaml")
    assert budget["kind"] == "PodDisruptionBudget"
    assert budget["spec"]["maxUnavailable"] == 1
    labels = yaml.safe_load((DEPLOY / "k8s" / "deployment.yaml").read_text())["spec"]["template"]["metadata"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels["labels"].items()


def test_kubectl_kustomize_renders_the_overlay(tmp_path: Path) -> None:
    if not shutil.which("kubectl"):
        tool_missing("kubectl", "kubectl not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "Secret",
            "Secret",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
        ]
    )  # no PersistentVolumeClaim: the state is in PostgreSQL
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert not [volume for volume in pod["volumes"] if "persistentVolumeClaim" in volume]
    [app] = pod["containers"]
    assert {
        "name": "WATCHER_STATE_URL",
        "valueFrom": {"secretKeyRef": {"name": "watcher-state", "key": "url"}},
    } in app["env"]
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 while a replica holds no partition
    # The pod's config is the overlay's watcher.yaml and is valid with the Secrets and env it gets.
    [config_map] = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "watcher-config"
    ]
    assert config_map["data"] == {"watcher.yaml": (OVERLAY / "watcher.yaml").read_text()}
    secrets = {k: v for o in objects if o["kind"] == "Secret" for k, v in o["stringData"].items()}
    environ = {**secrets, **{e["name"]: e["value"] for e in app["env"] if "value" in e}}
    environ["WATCHER_STATE_URL"] = secrets["url"]
    (tmp_path / "watcher.yaml").write_text(config_map["data"]["watcher.yaml"])
    loaded = load_config(tmp_path / "watcher.yaml", environ)
    assert loaded.state.url == secrets["url"]
    assert loaded.http.listen == "0.0.0.0:9464"

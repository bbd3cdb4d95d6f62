"""The deployment files: Kubernetes manifests against the Kubernetes schemas, the compose
file's structure, the systemd unit through `systemd-analyze verify`, and every tailmeter
config they ship through `tailmeter check` of the built binary.

Docker cannot run here, so the compose stack is checked, not started. The ServiceMonitor
is a CRD with no offline schema: it is checked by hand (selector and port match the
Service) instead of by `kubernetes-validate`, which has only the core API's schemas.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.procs import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"
K8S_VERSION = "1.33.0"
CRDS = {"ServiceMonitor"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[tuple[str, dict]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [(f"{name}#{i}", doc) for name in kustomization["resources"] for i, doc in enumerate(_docs(K8S / name))]


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("where,doc", _manifests(), ids=[w for w, _ in _manifests()])
def test_kubernetes_manifest_matches_schema(where: str, doc: dict) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    if doc["kind"] in CRDS:
        pytest.skip(f"{doc['kind']} is a CRD: no offline schema (checked in test_servicemonitor_targets_the_service)")
    kv.validate(doc, K8S_VERSION, strict=True)


def _by_kind(kind: str, name: str | None = None) -> dict:
    return next(d for _, d in _manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def test_servicemonitor_targets_the_service() -> None:
    monitor, service = _by_kind("ServiceMonitor"), _by_kind("Service", "tailmeter")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_service_and_probes_reach_the_container() -> None:
    deployment, service = _by_kind("Deployment"), _by_kind("Service", "tailmeter")
    pod = deployment["spec"]["template"]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    tailmeter = next(c for c in pod["spec"]["containers"] if c["name"] == "tailmeter")
    named = {p["name"] for p in tailmeter["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named
    assert tailmeter["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["name"] for m in tailmeter["volumeMounts"]}
    assert {v["name"] for v in pod["spec"]["volumes"]} == mounts


def test_tailnet_egress_service_uses_the_operator_pattern() -> None:
    egress = _by_kind("Service", "llm-gateway")
    assert egress["spec"]["type"] == "ExternalName"
    assert egress["metadata"]["annotations"]["tailscale.com/tailnet-fqdn"].endswith(".ts.net")


def _configmap_toml() -> str:
    return _by_kind("ConfigMap")["data"]["tailmeter.toml"]


CHECK_ENV = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-ant-x", "TAILMETER_LISTEN": "127.0.0.1:8080",
             "CLICKHOUSE_PASSWORD": "pw"}


@pytest.mark.parametrize("name", ["kubernetes configmap", "compose tailmeter.toml"])
def test_shipped_configs_pass_tailmeter_check(binaries, tmp_path: Path, name: str) -> None:
    text = _configmap_toml() if name.startswith("kubernetes") else (COMPOSE / "tailmeter.toml").read_text()
    path = tmp_path / "tailmeter.toml"
    path.write_text(text)
    out = subprocess.run([str(binaries["tailmeter"]), "check", "--config", str(path)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, **CHECK_ENV})
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_file_structure() -> None:
    compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"tailmeter", "prometheus", "grafana", "clickhouse"}
    build = services["tailmeter"]["build"]
    assert (COMPOSE / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).exists()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).resolve().exists(), f"{name}: {source} does not exist"
            elif not source.startswith("/"):
                assert source in compose["volumes"], f"{name}: named volume {source} not declared"
        for dep in service.get("depends_on", []):
            assert dep in services
    # Prometheus scrapes tailmeter's admin listener and loads the rules directory.
    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    admin = re.search(r'admin_listen = "([^"]+)"', (COMPOSE / "tailmeter.toml").read_text()).group(1)
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == [admin]
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert "../prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]
    assert services["grafana"]["environment"]["GF_INSTALL_PLUGINS"] == "grafana-clickhouse-datasource"


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool missing")
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    rules = tmp_path / "rules"
    shutil.copytree(DEPLOY / "prometheus" / "rules", rules)
    config["rule_files"] = [str(rules / "*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing")
    unit = tmp_path / "tailmeter.service"
    # The binary is not installed here: point the unit at a real executable for the check.
    unit.write_text((DEPLOY / "systemd" / "tailmeter.service").read_text().replace("/usr/local/bin/tailmeter", "/bin/true"))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stdout + out.stderr
    text = unit.read_text()
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "CapabilityBoundingSet=\n"):
        assert hardening in text

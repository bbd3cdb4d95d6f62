"""tailmeter in the container the shipped Kubernetes Deployment describes (deploy/kubernetes).

The manifest tests say the YAML is well formed and its parts refer to each other; not that the
binary can live in what the manifest asks of the runtime: a read-only root, user 65532 with no
capabilities and no way to gain any, the runtime's default seccomp profile, its config and
tailscaled's socket mounted read-only, one writable volume for the rows. Here `harness.pod`
builds that container from the Deployment and the Dockerfile (Debian's containers-common
default profile standing in for the runtime's) and tailmeter serves the shipped ConfigMap's
configuration in it, its providers pointed at the simulator: probes, callers identified by
whois over the mounted socket (a user, a `tag:k8s` node, an unknown caller refused), a call, a
stream, an Anthropic message, a stream the provider cuts (estimated on the estimator thread),
SIGHUP, then SIGTERM with exit 0 and every row in the volume, written as the pod's user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml

from harness import events as ev
from harness import pod, seccomp
from harness.clients import Tailmeter, http_client
from harness.config import SRC_ALICE, SRC_K8S, SRC_UNKNOWN
from harness.procs import REPO, free_port, start_tailmeter
from harness.sim import Sim
from harness.tailscaled import FakeTailscaled

K8S = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "deploy" / "compose" / "Dockerfile"
# Debian's containers-common: the default profile of podman and CRI-O, which Kubernetes'
# `RuntimeDefault` names on a node running CRI-O (containerd's own is much the same list).
DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")
KILLED = f"ended early (exit -{signal.SIGSYS.value}: it made a call the profile forbids)"
ALICE = "alice@example.com"
CHAT = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
LONG_STREAM = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "tell me more " * 200}]}
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


def _manifest(kind: str) -> dict:
    docs = [d for path in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    return next(d for d in docs if d["kind"] == kind)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "building the container's mounts and user needs root"
    if not DEFAULT_PROFILE.exists():
        return f"{DEFAULT_PROFILE} (Debian's golang-github-containers-common) is missing"
    return seccomp.available()


def _configmap_for_test(text: str, api: int, admin: int, sim_url: str) -> str:
    """The shipped configuration with only its ports (a pod has its own network; here the host's
    is shared) and its providers' addresses (the simulator) changed."""
    for old, new in [(":8080\"", f":{api}\""), (":9090\"", f":{admin}\""),
                     ("https://api.openai.com", sim_url), ("https://api.anthropic.com", sim_url)]:
        assert text.count(old) == 1, f"{old} in the ConfigMap"
        text = text.replace(old, new)
    return text


def _volume(path: Path, mode: int) -> Path:
    path.mkdir(exist_ok=True)
    path.chmod(mode)
    return path


def _container(binary: Path, sim: Sim, tmp_path: Path, tsd: FakeTailscaled, api: int, admin: int) -> pod.Container:
    """The Deployment's tailmeter container with the ConfigMap (ports and providers changed)."""
    config = _volume(tmp_path / "config", 0o755)
    (config / "tailmeter.toml").write_text(
        _configmap_for_test(_manifest("ConfigMap")["data"]["tailmeter.toml"], api, admin, sim.base_url))
    _volume(tsd.socket.parent, 0o777)
    return pod.from_manifests(
        _manifest("Deployment"), DOCKERFILE.read_text(), "tailmeter", binary,
        volume_sources={"config": config, "data": _volume(tmp_path / "data", 0o777),  # an emptyDir
                        "tailscale-socket": tsd.socket.parent},
        secret_env={"OPENAI_API_KEY": sim.openai_key, "ANTHROPIC_API_KEY": sim.anthropic_key},
        seccomp_rules=seccomp.from_oci_profile(json.loads(DEFAULT_PROFILE.read_text())).save(tmp_path / "profile.json"),
        root=_volume(tmp_path / "rootfs", 0o755),
    )


@pytest.fixture
def tsd() -> Iterator[FakeTailscaled]:
    fake = FakeTailscaled()
    fake.add_user(SRC_ALICE, ALICE, "Alice Example", "alice-laptop")
    fake.add_tagged(SRC_K8S, ["tag:k8s"], "k8s-operator-egress")
    yield fake
    fake.stop()


# What the container's process sees, checked from inside it by a shell in tailmeter's place.
INSIDE = """
echo "user $(id -u):$(id -g) groups $(id -G) in $(pwd)"
grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' '
for f in /probe /tmp/probe /etc/tailmeter/probe /var/run/tailscale/probe /var/lib/tailmeter/probe; do
    if touch "$f" 2>/dev/null; then echo "writable $f"; else echo "read-only $f"; fi
done
test -r /etc/tailmeter/tailmeter.toml && echo "config readable"
test -S /var/run/tailscale/tailscaled.sock && echo "socket present"
echo "key ${OPENAI_API_KEY:+set} home $HOME"
"""


def test_the_container_is_what_the_manifest_asks(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path, tsd: FakeTailscaled
) -> None:
    missing = _missing()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    container = _container(binaries["tailmeter"], sim, tmp_path, tsd, free_port(), free_port())
    container.argv = ["/bin/sh", "-c", INSIDE]
    out = subprocess.run(container.wrap(tmp_path / "pod.json")([]), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "user 65532:65532 groups 65532 in /var/lib/tailmeter",
        "CapPrm: 0000000000000000", "CapEff: 0000000000000000", "CapBnd: 0000000000000000",
        "CapAmb: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2",
        "read-only /probe", "read-only /tmp/probe", "read-only /etc/tailmeter/probe",
        "read-only /var/run/tailscale/probe", "writable /var/lib/tailmeter/probe",
        "config readable", "socket present", "key set home /",
    ], out.stdout + out.stderr


def test_the_gateway_does_all_its_work_in_the_deployments_container(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path, tsd: FakeTailscaled
) -> None:
    missing = _missing()
    if missing:  # .ci/run runs as root and installs the profile: missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    api, admin = free_port(), free_port()
    container = _container(binaries["tailmeter"], sim, tmp_path, tsd, api, admin)
    data = tmp_path / "data"
    assert container.uid == container.gid == 65532 and container.read_only_root and container.no_new_privileges
    proc = start_tailmeter(binaries["tailmeter"], tmp_path / "config" / "tailmeter.toml", tmp_path, {},
                           ready_at=f"127.0.0.1:{admin}", wrap=container.wrap(tmp_path / "pod.json"))
    tm = Tailmeter(proc, f"127.0.0.1:{api}", f"127.0.0.1:{admin}")
    deployment = _manifest("Deployment")
    try:
        for probe in ("readinessProbe", "livenessProbe"):
            path = deployment["spec"]["template"]["spec"]["containers"][0][probe]["httpGet"]["path"]
            assert httpx2.get(f"http://{tm.admin}{path}", timeout=10).status_code == 200, probe
        with http_client(SRC_ALICE) as alice, http_client(SRC_K8S) as node, http_client(SRC_UNKNOWN) as stranger:
            assert ev.chat(alice, tm, body=CHAT).status_code == 200
            streamed = ev.chat(alice, tm, body={**CHAT, "stream": True})
            assert streamed.status_code == 200 and b"data: [DONE]" in streamed.content
            sent = alice.post(f"{tm.base_url}/v1/messages", json=MESSAGES, headers=ev.ANTHROPIC_HEADERS)
            assert sent.status_code == 200, sent.text
            assert ev.chat(node, tm, body={**CHAT, "model": "gpt-5-mini"}).status_code == 200
            refused = ev.chat(stranger, tm, body=CHAT)
            assert refused.status_code == 403 and refused.json()["error"]["code"], refused.text
            with pytest.raises(httpx2.TransportError):  # the provider cuts the stream; so does tailmeter
                ev.chat(alice, tm, body=LONG_STREAM, headers={"x-sim-fault": "cut-after=600"})
        ev.wait_for("the cut stream's row, or tailmeter's end",
                    lambda: not proc.alive() or len(ev.json_rows(data)) == 6)
        assert proc.alive(), proc.describe_failure(KILLED)
        ev.hangup_and_wait(tm, "configuration reloaded", 1)
        budget = tm.metrics.value("tailmeter_budget_used_tokens", budget="k8s-daily")
        assert budget > 0, tm.metrics.describe()
    finally:
        code = proc.stop()
    assert code == 0, proc.describe_failure(KILLED)
    rows = ev.json_rows(data)
    assert [(r["identity"], r["status"], r["usage_source"]) for r in rows] == [
        (ALICE, 200, "provider"), (ALICE, 200, "provider"), (ALICE, 200, "provider"),
        ("tag:k8s", 200, "provider"), ("__unidentified__", 403, "none"), (ALICE, 200, "estimated")], rows
    assert int(rows[5]["input_tokens"]) > 200, rows[5]
    written = [p for p in data.rglob("*")]
    assert written and all(p.stat().st_uid == 65532 for p in written), [(p, p.stat().st_uid) for p in written]
    log = proc.log_path.read_text()
    for trouble in ("Read-only file system", "Permission denied", "cannot lower the input estimator's priority"):
        assert trouble not in log, log[-3000:]

"""No credential in anything tailmeter emits (issue 9, "Secrets").

A private instance runs with `RUST_LOG=trace` (the most verbose logging there is, Pingora's
header dumps included) through a full mixed run: chat streamed and not, Responses, embeddings,
Messages streamed and not, a refusal, an unknown model, an upstream 500, an error event inside a
200 stream, a client hanging up mid-stream, credentials in every place a client can put one
(`Authorization`, `x-api-key`, `x-goog-api-key`, a `key=` query parameter), whoami, /v1/models,
/metrics, /healthz and /readyz. Then every byte it produced is scanned for every provider key
and every client credential: its log, /metrics, the event JSON-lines files and the spool, and
every response (headers and body) a client or scraper got. Zero hits.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx2

from harness import config as cfg
from harness import events as ev
from harness.clients import CLIENT_KEYS, Tailmeter, http_client
from harness.procs import free_port, start_tailmeter
from harness.sim import Sim

PROVIDER_KEYS = [
    "sk-provider-e2e-openai-31f0c2", "sk-ant-provider-e2e-77ab19", "gm-provider-e2e-5d1e07", "br-provider-e2e-c81a44",
]
# Extra client credentials, each sent where a client may put one.
CLIENT_GOOG = "AIza-client-e2e-goog-6f3a90"
CLIENT_QUERY = "client-e2e-query-key-0d2b57"
CLIENT_SPOOF = "client-e2e-proxy-auth-a1b2c3"
SECRETS = PROVIDER_KEYS + CLIENT_KEYS + [CLIENT_GOOG, CLIENT_QUERY, CLIENT_SPOOF]


def _launch_trace(binary: Path, workdir: Path, sim_url: str) -> Tailmeter:
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    extra = cfg.sections(events={"dir": str(workdir / "events"), "spool_dir": str(workdir / "spool"), "batch_rows": 1})
    path = workdir / "tailmeter.toml"
    path.write_text(cfg.render(cfg.TailmeterConfig(listen, admin, cfg.standard_providers(sim_url), extra=extra)))
    proc = start_tailmeter(binary, path, workdir, {**ev.PROVIDER_ENV, "RUST_LOG": "trace"}, ready_at=admin)
    return Tailmeter(proc, listen, admin)


def _dump(resp: httpx2.Response) -> str:
    head = "\n".join(f"{k}: {v}" for k, v in resp.headers.multi_items())
    return f"{resp.status_code}\n{head}\n{resp.read().decode(errors='replace')}"


def _hang_up_mid_stream(tm: Tailmeter) -> None:
    """A streamed chat whose client reads the first bytes and closes the socket."""
    host, port = tm.listen.rsplit(":", 1)
    body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {tm.listen}\r\nAuthorization: Bearer {CLIENT_KEYS[0]}\r\n"
        f"x-sim-fault: chunk-bytes=16,chunk-delay-ms=50\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10, source_address=(cfg.SRC_ALICE, 0)) as sock:
        sock.sendall(head + body)
        sock.recv(512)


def _full_run(tm: Tailmeter) -> list[str]:
    """Every kind of traffic; returns every answer as text."""
    out: list[str] = []
    ev.mixed_requests(tm)
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    every_credential = {
        "authorization": f"Bearer {CLIENT_KEYS[0]}", "x-api-key": CLIENT_KEYS[1], "x-goog-api-key": CLIENT_GOOG,
        "proxy-authorization": f"Basic {CLIENT_SPOOF}",
    }
    url = f"{tm.base_url}/v1/chat/completions?key={CLIENT_QUERY}"
    with http_client(cfg.SRC_ALICE) as alice, http_client(cfg.SRC_UNKNOWN) as stranger:
        calls = [
            lambda: alice.post(url, json=chat, headers=every_credential),
            lambda: alice.post(url, json={**chat, "stream": True}, headers=every_credential),
            lambda: alice.post(url, json={**chat, "model": "no-such-model"}, headers=every_credential),
            lambda: alice.post(url, json=chat, headers={**every_credential, "x-sim-fault": "status=500"}),
            lambda: alice.post(url, json={**chat, "stream": True}, headers={**every_credential, "x-sim-fault": "error-event"}),
            lambda: alice.post(url, content=b"{not json", headers=every_credential),
            lambda: stranger.post(url, json=chat, headers=every_credential),
            lambda: alice.get(f"{tm.base_url}/tailmeter/whoami", headers=every_credential),
            lambda: alice.get(f"{tm.base_url}/v1/models", headers=every_credential),
            lambda: alice.get(f"{tm.base_url}/v1/models", headers={**every_credential, "anthropic-version": "2023-06-01"}),
            lambda: alice.get(f"{tm.base_url}/metrics", headers=every_credential),
        ]
        out += [_dump(call()) for call in calls]
    _hang_up_mid_stream(tm)
    with httpx2.Client(timeout=10.0, trust_env=False) as admin:
        for path in ("/metrics", "/healthz", "/readyz"):
            out.append(_dump(admin.get(f"http://{tm.admin}{path}")))
    return out


def _hits(name: str, text: str) -> list[str]:
    return [f"{name}: {secret}" for secret in SECRETS if secret in text]


def test_no_secret_in_anything_tailmeter_emits(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    tm = _launch_trace(binaries["tailmeter"], tmp_path, sim.base_url)
    try:
        answers = _full_run(tm)
        ev.wait_for("event rows written", lambda: len(ev.json_rows(tmp_path / "events")) >= 10)
    finally:
        code = tm.proc.stop()
    assert code == 0, tm.proc.log_text()
    log = tm.proc.log_path.read_text(errors="replace")
    # The run really was verbose, Pingora's own modules included, so the scan means something
    # (its header-dumping modules are held to info: what they would print is what is scanned for).
    assert " DEBUG pingora_core" in log and " DEBUG tailmeter" in log, log[-3000:]
    hits = _hits("log", log)
    for i, answer in enumerate(answers):
        hits += _hits(f"answer {i}", answer)
    files = [p for d in ("events", "spool") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files), files
    for path in files:
        hits += _hits(str(path), path.read_bytes().decode(errors="replace"))
    assert not hits, "credentials found in tailmeter's output:\n  " + "\n  ".join(hits)

"""The binary's commands and process behaviour: --version, check, SIGTERM, streaming.

`check` must accept the suite's own config and reject an unknown key or an
unset `${VAR}` naming the file, line and key; SIGTERM must let an in-flight
stream finish and exit 0, refusing what arrives meanwhile; a slow stream must reach the client as
it arrives.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

from harness import config as cfg
from harness.clients import CLIENT_ANTHROPIC_KEY, CLIENT_OPENAI_KEY, REQUEST_ID, Tailmeter, http_client
from harness.sim import Sim

SLOW = {"x-sim-fault": "chunk-bytes=64,chunk-delay-ms=40"}
STREAM_BODY = json.dumps({
    "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True,
}).encode()
OPENAI_HEADERS = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "content-type": "application/json"}
HEADERS = {**OPENAI_HEADERS, **SLOW}
CHAT_BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
MESSAGES_BODY = json.dumps({
    "model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}],
}).encode()
ANTHROPIC_HEADERS = {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01",
                     "content-type": "application/json"}


def run(binary: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TM_E2E_")}
    full_env.update(env or {})
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30, env=full_env)


def write_config(path: Path, sim: Sim, extra_server_line: str | None = None) -> int | None:
    """Write the suite's config; with `extra_server_line`, add it under [server] and return its line."""
    lines = cfg.render(cfg.TailmeterConfig("127.0.0.1:1", "127.0.0.1:2", cfg.standard_providers(sim.base_url))).split("\n")
    line_no = None
    if extra_server_line:
        lines.insert(1, extra_server_line)
        line_no = 2
    path.write_text("\n".join(lines))
    return line_no


KEYS_ENV = {cfg.OPENAI_KEY_ENV: "k1", cfg.ANTHROPIC_KEY_ENV: "k2"}


def test_version(binaries: dict[str, Path]) -> None:
    out = run(binaries["tailmeter"], "--version")
    assert out.returncode == 0, out.stderr
    assert "tailmeter" in out.stdout


def test_check_accepts_the_suite_config(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "tailmeter.toml"
    write_config(path, sim)
    out = run(binaries["tailmeter"], "check", "--config", str(path), env=KEYS_ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    for word in ("openai", "anthropic", "gpt-4o", "claude-haiku-4-5", "tag:ci"):
        assert word in out.stdout, f"{word!r} missing from the resolved config:\n{out.stdout}"


def test_check_rejects_unknown_key(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    line = write_config(path, sim, "listen_backlog_e2e = 5")
    out = run(binaries["tailmeter"], "check", "--config", str(path), env=KEYS_ENV)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert path.name in text and "listen_backlog_e2e" in text, text
    assert re.search(rf"\b{line}\b", text), f"line {line} not named: {text}"


def test_check_rejects_unset_variable(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "tailmeter.toml"
    write_config(path, sim)
    out = run(binaries["tailmeter"], "check", "--config", str(path), env={cfg.OPENAI_KEY_ENV: "k1"})
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert cfg.ANTHROPIC_KEY_ENV in text, text


def test_stream_is_not_buffered(tailmeter: Tailmeter) -> None:
    """A slowly arriving stream reaches the client piece by piece, not all at the end."""
    start = time.monotonic()
    first = None
    with http_client(cfg.SRC_ALICE) as http:
        with http.stream("POST", f"{tailmeter.base_url}/v1/chat/completions", content=STREAM_BODY, headers=HEADERS) as resp:
            assert resp.status_code == 200
            for _ in resp.iter_raw():
                first = first if first is not None else time.monotonic() - start
    total = time.monotonic() - start
    assert first is not None and total > 1.0, f"the slow stream took only {total:.2f}s"
    assert first < total / 3, f"first bytes after {first:.2f}s of {total:.2f}s: the stream was buffered"


def test_sigterm_finishes_inflight_stream_refuses_new_requests_and_exits_zero(
    launch_tailmeter: Callable[[], Tailmeter],
) -> None:
    """While SIGTERM waits for an in-flight stream, /readyz answers 503 (a load balancer stops
    sending), /healthz still 200, and a new request is refused with 503 in its endpoint's format,
    with a request id; the stream finishes whole and the process exits 0."""
    tm = launch_tailmeter()
    admin = f"http://{tm.admin}"
    received = b""
    during: dict[str, httpx2.Response] = {}
    with http_client(cfg.SRC_ALICE) as http:
        with http.stream("POST", f"{tm.base_url}/v1/chat/completions", content=STREAM_BODY, headers=HEADERS) as resp:
            assert resp.status_code == 200
            for piece in resp.iter_raw():
                if not received:
                    tm.proc.popen.send_signal(signal.SIGTERM)
                    with http_client(cfg.SRC_ALICE) as other:
                        deadline = time.monotonic() + 5
                        while other.get(f"{admin}/readyz").status_code != 503 and time.monotonic() < deadline:
                            time.sleep(0.02)
                        during["readyz"] = other.get(f"{admin}/readyz")
                        during["healthz"] = other.get(f"{admin}/healthz")
                        during["chat"] = other.post(f"{tm.base_url}/v1/chat/completions", content=CHAT_BODY,
                                                    headers=OPENAI_HEADERS)
                        during["messages"] = other.post(f"{tm.base_url}/v1/messages", content=MESSAGES_BODY,
                                                        headers=ANTHROPIC_HEADERS)
                received += piece
    assert received.rstrip().endswith(b"data: [DONE]"), "in-flight stream was cut by SIGTERM"
    assert (during["readyz"].status_code, during["healthz"].status_code) == (503, 200)
    chat, messages = during["chat"], during["messages"]
    assert chat.status_code == 503 and chat.headers.get(REQUEST_ID), chat.text
    assert chat.json()["error"]["code"] == "shutting_down", chat.text
    assert messages.status_code == 503 and messages.headers.get(REQUEST_ID), messages.text
    body = messages.json()
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error", messages.text
    assert "shutting down" in body["error"]["message"], messages.text
    code = tm.proc.stop()
    assert code == 0, tm.proc.describe_failure(f"exited with {code} after SIGTERM")

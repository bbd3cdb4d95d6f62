"""The binary's commands and process behaviour: --version, check, SIGTERM, streaming.

`check` must accept the suite's own config and reject an unknown key or an
unset `${VAR}` naming the file, line and key; SIGTERM must let an in-flight
stream finish and exit 0; a slow stream must reach the client as it arrives.
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

from harness import config as cfg
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client
from harness.sim import Sim

SLOW = {"x-sim-fault": "chunk-bytes=64,chunk-delay-ms=40"}
STREAM_BODY = json.dumps({
    "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True,
}).encode()
HEADERS = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "content-type": "application/json", **SLOW}


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


def test_sigterm_finishes_inflight_stream_and_exits_zero(launch_tailmeter: Callable[[], Tailmeter]) -> None:
    tm = launch_tailmeter()
    received = b""
    with http_client(cfg.SRC_ALICE) as http:
        with http.stream("POST", f"{tm.base_url}/v1/chat/completions", content=STREAM_BODY, headers=HEADERS) as resp:
            assert resp.status_code == 200
            for piece in resp.iter_raw():
                if not received:
                    tm.proc.popen.send_signal(signal.SIGTERM)
                received += piece
    assert received.rstrip().endswith(b"data: [DONE]"), "in-flight stream was cut by SIGTERM"
    code = tm.proc.stop()
    assert code == 0, tm.proc.describe_failure(f"exited with {code} after SIGTERM")

"""Helpers for the usage-row and trace tests: private tailmeter instances with optional
`[events]`/`[clickhouse]`/`[otlp]` tables, a steady background load whose every completed
response is remembered by its `x-tailmeter-request-id`, the rows of the embedded JSON sink,
and an OTLP receiver (the `otlp-receiver` binary)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx2

from . import config as cfg
from .clients import CLIENT_ANTHROPIC_KEY, CLIENT_OPENAI_KEY, REQUEST_ID, Tailmeter, http_client
from .metrics import TOKEN_TYPES
from .procs import Process, find_binary, free_port, start_tailmeter, wait_ready

PROVIDER_ENV = {cfg.OPENAI_KEY_ENV: "sk-provider-e2e-openai-31f0c2", cfg.ANTHROPIC_KEY_ENV: "sk-ant-provider-e2e-77ab19"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "content-type": "application/json"}
ANTHROPIC_HEADERS = {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01",
                     "content-type": "application/json"}
TOKEN_COLUMNS = {t: f"{t}_tokens" for t in TOKEN_TYPES}
COLUMNS = [
    "ts", "request_id", "trace_id", "identity", "login", "tags", "node", "src_ip", "provider",
    "model", "response_model", "endpoint", "stream", "status", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "duration_ms",
    "ttft_ms", "usage_source", "user_agent",
]
# The first request of `mixed_requests` carries this client trace.
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")


@dataclass
class Instance:
    """A private tailmeter and what it takes to start it again (same config, same spool)."""

    binary: Path
    workdir: Path
    config: Path
    tm: Tailmeter
    starts: int = 1

    def restart(self) -> None:
        # Keep the previous run's log for diagnosis: each start truncates tailmeter.log.
        self.tm.proc.log_path.rename(self.workdir / f"tailmeter.run{self.starts}.log")
        self.starts += 1
        proc = start_tailmeter(self.binary, self.config, self.workdir, PROVIDER_ENV)
        wait_ready(proc, self.tm.admin)
        self.tm = Tailmeter(proc, self.tm.listen, self.tm.admin)


def launch(binary: Path, workdir: Path, sim_url: str, shutdown_grace: str | None = None,
           wrap: Callable[[list[str]], list[str]] | None = None, **tables: dict | None) -> Instance:
    """A tailmeter in front of the simulator with the standard providers plus `tables`
    (e.g. `events={...}, clickhouse={...}`), `[server] shutdown_grace` when given, its command
    turned by `wrap` (procs.start_tailmeter) when given."""
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    path = workdir / "tailmeter.toml"
    text = cfg.render(cfg.TailmeterConfig(listen, admin, cfg.standard_providers(sim_url), extra=cfg.sections(**tables),
                                          shutdown_grace=shutdown_grace))
    path.write_text(text)
    proc = start_tailmeter(binary, path, workdir, PROVIDER_ENV, ready_at=admin, wrap=wrap)
    return Instance(binary, workdir, path, Tailmeter(proc, listen, admin))


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 20.0, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    assert check(), f"timed out after {timeout_s}s waiting for: {what}"


def hangup_and_wait(tm: Tailmeter, text: str, count: int) -> None:
    """SIGHUP, then wait (bounded) for the `count`-th log line containing `text`."""
    tm.proc.popen.send_signal(signal.SIGHUP)
    wait_for(f"{count}× {text!r} in the log", lambda: tm.proc.log_text(500_000).count(text) >= count, 10)


def chat(http: httpx2.Client, tm: Tailmeter, body: dict | None = None, headers: dict | None = None) -> httpx2.Response:
    return http.post(f"{tm.base_url}/v1/chat/completions", json=body or CHAT, headers={**HEADERS, **(headers or {})})


def mixed_requests(tm: Tailmeter) -> list[str]:
    """One of each kind of request (streamed and not, four endpoints, two callers); returns the
    request ids the responses carried."""
    ids = []
    messages = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    with http_client(cfg.SRC_ALICE) as alice, http_client(cfg.SRC_CI) as ci:
        calls = [
            lambda: chat(alice, tm, headers={"traceparent": TRACEPARENT}),
            lambda: chat(alice, tm, body={**CHAT, "stream": True}),
            lambda: chat(ci, tm),
            lambda: alice.post(f"{tm.base_url}/v1/responses", json={"model": "gpt-4o", "input": "hi"}, headers=HEADERS),
            lambda: alice.post(f"{tm.base_url}/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"}, headers=HEADERS),
            lambda: alice.post(f"{tm.base_url}/v1/messages", json=messages, headers=ANTHROPIC_HEADERS),
            lambda: alice.post(f"{tm.base_url}/v1/messages", json={**messages, "stream": True}, headers=ANTHROPIC_HEADERS),
            lambda: chat(ci, tm, body={"model": "gpt-5-nano", "messages": []}),  # 403: not granted
        ]
        for call in calls:
            resp = call()
            resp.read()
            ids.append(resp.headers[REQUEST_ID])
    return ids


@dataclass
class Load:
    """Background clients sending chat requests in a loop until stopped. `received` holds the
    request id of every response read to its end; failures are counted, not raised."""

    tm: Tailmeter
    threads: int = 4
    pause_s: float = 0.0
    received: list[str] = field(default_factory=list)
    failures: int = 0
    attempts: int = 0
    slowest_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Load":
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self) -> None:
        with http_client(cfg.SRC_ALICE, timeout=10.0) as http:
            while not self._stop.is_set():
                with self._lock:
                    self.attempts += 1
                started = time.monotonic()
                try:
                    resp = chat(http, self.tm)
                    ok = resp.status_code == 200 and resp.json().get("usage") is not None
                    rid = resp.headers.get(REQUEST_ID)
                except (httpx2.HTTPError, ValueError):
                    ok, rid = False, None
                with self._lock:
                    self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                    if ok and rid:
                        self.received.append(rid)
                    else:
                        self.failures += 1
                if not ok:
                    time.sleep(0.05)
                elif self.pause_s:
                    time.sleep(self.pause_s)

    def stop(self) -> "Load":
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)
        return self


def json_rows(directory: Path) -> list[dict]:
    """Every row of the embedded sink's files, in file order."""
    rows = []
    for path in sorted(directory.glob("requests-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def assert_row_shape(row: dict) -> None:
    """A row has exactly the contract's columns, in order, with the table's value shapes."""
    assert list(row) == COLUMNS, list(row)
    assert TS.match(row["ts"]), row["ts"]
    assert row["stream"] in (0, 1) and isinstance(row["tags"], list)
    assert row["usage_source"] in ("provider", "estimated", "none")
    assert re.fullmatch(r"[0-9a-f]{32}", row["request_id"]), row["request_id"]


def token_sums(rows: list[dict]) -> dict[str, int]:
    return {t: sum(int(r[col]) for r in rows) for t, col in TOKEN_COLUMNS.items()}


def metric_token_sums(tm: Tailmeter) -> dict[str, int]:
    return {t: int(tm.metrics.value("tailmeter_tokens_total", type=t)) for t in TOKEN_TYPES}


def exporter_rows(tm: Tailmeter, sink: str) -> dict[str, int]:
    return {
        r: int(tm.metrics.value("tailmeter_exporter_rows_total", sink=sink, result=r))
        for r in ("written", "spooled", "replayed", "dropped")
    }


class OtlpReceiver:
    """The `otlp-receiver` binary on OS-assigned ports; `spans()` reads what it received."""

    LISTENING = re.compile(r"listening grpc=(\S+) http=(\S+)")

    def __init__(self, workdir: Path):
        binary = find_binary("otlp-receiver", "OTLP_RECEIVER_BIN")
        self.out = workdir / "spans.jsonl"
        self.proc = Process("otlp-receiver", [str(binary), "--out", str(self.out)], workdir / "otlp.log", workdir, dict(os.environ))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = self.LISTENING.search(self.proc.log_path.read_text())
            if match:
                self.grpc, self.http = match.group(1), match.group(2)
                return
            if not self.proc.alive():
                break
            time.sleep(0.05)
        message = self.proc.describe_failure("did not print its ports")
        self.proc.stop()
        raise RuntimeError(message)

    def spans(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        self.proc.stop()

"""Process faults (issue 9) and the `shutdown` ending (issue 3), under concurrent streams.

- SIGTERM with 50 streams in flight: every stream finishes within the grace period, the process
  exits 0, and the shutdown flush writes one ClickHouse row per stream whose tokens are exactly
  what the simulator reported for it (its `x-sim-usage` header), in sum and one by one.
- SIGKILL with streams in flight: at restart the spool replays; every response a client received
  whole has its row with the simulator's figures, nothing is counted twice.
- A stream longer than `shutdown_grace` when SIGTERM arrives is cut at the grace deadline,
  the process still exits 0, and the request is recorded as ended by `shutdown` with estimated
  usage.

test_lifecycle.py covers one stream finishing after SIGTERM, test_clickhouse.py a SIGKILL under
non-streaming load, test_events_json.py the flush of the open batch; these add concurrency,
streams and the exact token figures.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from harness import config as cfg
from harness.clickhouse import ClickHouse
from harness.clients import REQUEST_ID, http_client
from harness.events import HEADERS, Instance, json_rows, launch, wait_for
from harness.metrics import TOKEN_TYPES
from harness.sim import Sim

USAGE = "x-sim-usage"


def stream_body(i: int) -> dict:
    # Prompts of different lengths give different usage per request.
    return {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi " + "x" * (i % 40)}]}


@dataclass
class Streams:
    """Client threads each reading streamed chat completions to their end, `rounds` times (0:
    until stopped). A stream counts as received only when it ended with `data: [DONE]`; its
    request id and the simulator's usage header are kept."""

    tm_url: str
    threads: int
    delay_ms: int
    rounds: int = 1
    received: dict[str, dict[str, int]] = field(default_factory=dict)
    first_bytes: int = 0
    cut: int = 0
    attempts: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Streams":
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, n: int) -> None:
        headers = {**HEADERS, "x-sim-fault": f"chunk-delay-ms={self.delay_ms}"}
        done = 0
        with http_client(cfg.SRC_ALICE, timeout=60.0) as http:
            while not self._stop.is_set() and (self.rounds == 0 or done < self.rounds):
                done += 1
                with self._lock:
                    self.attempts += 1
                try:
                    with http.stream("POST", f"{self.tm_url}/v1/chat/completions", json=stream_body(n + done),
                                     headers=headers) as resp:
                        body, first = b"", True
                        for piece in resp.iter_raw():
                            if first:
                                first = False
                                with self._lock:
                                    self.first_bytes += 1
                            body += piece
                    whole = resp.status_code == 200 and body.rstrip().endswith(b"data: [DONE]")
                except httpx2.HTTPError:
                    whole = False
                with self._lock:
                    if whole:
                        self.received[resp.headers[REQUEST_ID]] = json.loads(resp.headers[USAGE])
                    else:
                        self.cut += 1

    def stop(self) -> "Streams":
        self._stop.set()
        return self.join()

    def join(self, timeout_s: float = 60.0) -> "Streams":
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        return self


def row_tokens(row: dict) -> dict[str, int]:
    return {t: int(row[f"{t}_tokens"]) for t in TOKEN_TYPES}


def assert_rows_match_the_sim(ch: ClickHouse, db: str, received: dict[str, dict[str, int]]) -> None:
    rows = {r["request_id"]: r for r in ch.rows(f"SELECT * FROM {db}.requests FINAL")}
    for rid, usage in received.items():
        assert row_tokens(rows[rid]) == usage, (rid, rows[rid], usage)
        assert rows[rid]["usage_source"] == "provider"


def launch_ch(binaries: dict[str, Path], sim: Sim, tmp_path: Path, ch: ClickHouse, db: str, interval: str) -> Instance:
    return launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  clickhouse={"url": ch.url, "database": db},
                  events={"dir": str(tmp_path / "events"), "batch_interval": interval})


def test_sigterm_with_50_streams_in_flight(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path,
                                          clickhouse_server: ClickHouse) -> None:
    db = "tm_fault_sigterm"
    # A minute-long batch interval: only the shutdown flush can deliver these rows.
    inst = launch_ch(binaries, synth_sim, tmp_path, clickhouse_server, db, "60s")
    # 7 events a second apart: each stream takes about 7 s, well inside the 30 s grace.
    streams = Streams(inst.tm.base_url, threads=50, delay_ms=1000).start()
    try:
        wait_for("50 streams in flight", lambda: streams.first_bytes == 50, timeout_s=30)
        assert inst.tm.metrics.value("tailmeter_inflight_requests") == 50 and not streams.received
        signalled = time.monotonic()
        inst.tm.proc.popen.send_signal(signal.SIGTERM)
        code = inst.tm.proc.popen.wait(timeout=40)
        took = time.monotonic() - signalled
    finally:
        streams.stop()
        inst.tm.proc.stop()
    assert code == 0, inst.tm.proc.describe_failure(f"exited with {code} after SIGTERM")
    assert (len(streams.received), streams.cut) == (50, 0), "a stream was cut by SIGTERM"
    assert took < 30, f"shutdown took {took:.1f}s, past the 30 s grace"
    assert clickhouse_server.request_counts(db) == (50, 50, 50)
    assert clickhouse_server.request_ids(db) == set(streams.received)
    assert_rows_match_the_sim(clickhouse_server, db, streams.received)
    sums = clickhouse_server.rows(
        "SELECT " + ", ".join(f"sum({t}_tokens) AS {t}" for t in TOKEN_TYPES) + f" FROM {db}.requests")[0]
    sim_totals = {t: sum(u[t] for u in streams.received.values()) for t in TOKEN_TYPES}
    assert {t: int(v) for t, v in sums.items()} == sim_totals
    assert "shutdown deadline reached" not in inst.tm.proc.log_text(limit=10**7)


def test_sigkill_with_streams_in_flight(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path,
                                        clickhouse_server: ClickHouse) -> None:
    db = "tm_fault_sigkill"
    # A 3 s interval keeps seconds of rows in the journal when the proxy dies.
    inst = launch_ch(binaries, synth_sim, tmp_path, clickhouse_server, db, "3s")
    streams = Streams(inst.tm.base_url, threads=16, delay_ms=50, rounds=0).start()
    try:
        wait_for("streams completing", lambda: len(streams.received) >= 80, timeout_s=60)
        inst.tm.proc.popen.send_signal(signal.SIGKILL)
        inst.tm.proc.popen.wait(timeout=10)
    finally:
        streams.stop()
    assert streams.cut > 0, "no stream was in flight at the kill"
    inst.restart()
    try:
        received = set(streams.received)
        wait_for("every received stream's row", lambda: clickhouse_server.request_ids(db) >= received, timeout_s=30)
        assert exporter_replayed(inst) > 0
        _, final, distinct = clickhouse_server.request_counts(db)
        # Streams cut by the kill may have a row (recorded as their last bytes passed) or not.
        assert final == distinct and len(received) <= distinct <= streams.attempts
        assert_rows_match_the_sim(clickhouse_server, db, streams.received)
        clickhouse_server.query(f"OPTIMIZE TABLE {db}.requests FINAL")
        assert clickhouse_server.request_counts(db) == (distinct, distinct, distinct), "a row counted twice"
    finally:
        assert inst.tm.proc.stop() == 0


def exporter_replayed(inst: Instance) -> int:
    return int(inst.tm.metrics.value("tailmeter_exporter_rows_total", sink="clickhouse", result="replayed"))


def test_a_stream_longer_than_the_grace_is_cut_as_shutdown(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url, shutdown_grace="1s",
                  events={"dir": str(data), "batch_interval": "60s"})
    slow = {**HEADERS, "x-sim-fault": "chunk-bytes=64,chunk-delay-ms=100"}  # ~4 s in all
    received, signalled, ended = b"", 0.0, 0.0
    try:
        with http_client(cfg.SRC_ALICE) as http:
            with http.stream("POST", f"{inst.tm.base_url}/v1/chat/completions", headers=slow,
                             json={**stream_body(0), "model": "gpt-4o"}) as resp:
                rid = resp.headers[REQUEST_ID]
                try:
                    for piece in resp.iter_raw():
                        if not received:
                            signalled = time.monotonic()
                            inst.tm.proc.popen.send_signal(signal.SIGTERM)
                        received += piece
                except httpx2.HTTPError:
                    pass  # the cut
                ended = time.monotonic()
        code = inst.tm.proc.popen.wait(timeout=20)
    finally:
        inst.tm.proc.stop()
    assert code == 0, inst.tm.proc.describe_failure(f"exited with {code} after SIGTERM")
    assert received and not received.rstrip().endswith(b"data: [DONE]"), "the stream was not cut"
    assert 0.9 <= ended - signalled < 5.0, f"cut {ended - signalled:.2f}s after SIGTERM, grace 1s"
    rows = [r for r in json_rows(data) if r["request_id"] == rid]
    assert len(rows) == 1, json_rows(data)
    row = rows[0]
    assert (row["status"], row["usage_source"]) == (200, "estimated"), row
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0, row
    # The access-log line is written from the same record that counts
    # tailmeter_usage_missing_total{reason} (the process is gone before /metrics can be read).
    access = [line for line in inst.tm.proc.log_text(limit=10**7).splitlines() if rid in line]
    assert any(re.search(r'usage_missing="?shutdown', line) for line in access), access

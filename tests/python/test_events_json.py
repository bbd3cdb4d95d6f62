"""The embedded default sink: one JSON line per proxied request, in the exact column shape of
the ClickHouse table, written without slowing requests, flushed at SIGTERM, and switched off
by `[events] enabled = false`.

Each test runs its own tailmeter (fresh counters, its own data directory), so the rows and the
metrics it compares are exactly its own requests'.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx2
import pytest

from harness import config as cfg
from harness.clients import REQUEST_ID, http_client
from harness.events import (
    TRACEPARENT, assert_row_shape, chat, exporter_rows, json_rows, launch, metric_token_sums,
    mixed_requests, token_sums, wait_for,
)
from harness.procs import free_port
from harness.sim import Sim

def test_every_request_has_one_row_matching_the_metrics(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url, events={"dir": str(data), "batch_interval": "100ms"})
    try:
        ids = mixed_requests(inst.tm) + mixed_requests(inst.tm)
        wait_for("a row per request", lambda: len(json_rows(data)) >= len(ids))
        rows = json_rows(data)
        assert sorted(r["request_id"] for r in rows) == sorted(ids), "exactly one row per response"
        for row in rows:
            assert_row_shape(row)
        assert token_sums(rows) == metric_token_sums(inst.tm)
        by_id = {r["request_id"]: r for r in rows}
        traced = by_id[ids[0]]
        assert traced["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # the client's trace, kept
        assert (traced["identity"], traced["login"], traced["stream"], traced["status"]) == (cfg.ALICE, cfg.ALICE, 0, 200)
        assert traced["input_tokens"] > 0 and traced["usage_source"] == "provider"
        assert by_id[ids[1]]["stream"] == 1 and by_id[ids[1]]["ttft_ms"] is not None
        assert (by_id[ids[2]]["identity"], by_id[ids[2]]["tags"]) == (cfg.CI_K8S, ["tag:ci", "tag:k8s"])
        assert [by_id[i]["endpoint"] for i in ids[3:6]] == ["responses", "embeddings", "messages"]
        refused = by_id[ids[7]]
        assert (refused["status"], refused["usage_source"], refused["input_tokens"]) == (403, "none", 0)
        health = exporter_rows(inst.tm, "json")
        assert health == {"written": len(ids), "spooled": 0, "replayed": 0, "dropped": 0}, health
        assert inst.tm.metrics.value("tailmeter_exporter_spool_bytes", sink="json") == 0
    finally:
        inst.tm.proc.stop()


def test_sigterm_flushes_the_open_batch(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    data = tmp_path / "events"
    # A batch that would wait a minute: only the shutdown flush can write it.
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url, events={"dir": str(data), "batch_interval": "60s"})
    with http_client(cfg.SRC_ALICE) as http:
        ids = [chat(http, inst.tm).headers[REQUEST_ID] for _ in range(7)]
    assert json_rows(data) == []
    assert inst.tm.proc.stop() == 0
    assert sorted(r["request_id"] for r in json_rows(data)) == sorted(ids)
    assert list((data / "spool").iterdir()) == [], "nothing left in the spool"


def test_a_crashed_runs_spool_is_written_at_the_next_start(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url, events={"dir": str(data), "batch_interval": "60s"})
    with http_client(cfg.SRC_ALICE) as http:
        ids = [chat(http, inst.tm).headers[REQUEST_ID] for _ in range(5)]
    wait_for("rows journaled in the spool", lambda: (data / "spool" / "open.jsonl").exists()
             and len((data / "spool" / "open.jsonl").read_text().splitlines()) == 5)
    inst.tm.proc.popen.send_signal(signal.SIGKILL)
    inst.tm.proc.popen.wait(timeout=10)
    assert json_rows(data) == []
    inst.restart()
    try:
        wait_for("the spool replayed", lambda: len(json_rows(data)) == 5)
        assert sorted(r["request_id"] for r in json_rows(data)) == sorted(ids)
        assert exporter_rows(inst.tm, "json")["replayed"] == 5
    finally:
        inst.tm.proc.stop()


def test_events_can_be_switched_off(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url, events={"dir": str(data), "enabled": False})
    try:
        with http_client(cfg.SRC_ALICE) as http:
            assert chat(http, inst.tm).status_code == 200
        assert inst.tm.metrics.value("tailmeter_requests_total") == 1
        with httpx2.Client(trust_env=False) as http:
            assert "tailmeter_exporter_rows_total" not in http.get(f"http://{inst.tm.admin}/metrics").text
    finally:
        assert inst.tm.proc.stop() == 0
    assert not data.exists() or json_rows(data) == []


@pytest.mark.parametrize("rotate", ["2KiB"])
def test_files_rotate_by_size(binaries: dict[str, Path], sim: Sim, tmp_path: Path, rotate: str) -> None:
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  events={"dir": str(data), "batch_rows": 1, "rotate_size": rotate})
    with http_client(cfg.SRC_ALICE) as http:
        for _ in range(12):
            chat(http, inst.tm)
    assert inst.tm.proc.stop() == 0
    files = sorted(data.glob("requests-*.jsonl"))
    assert len(files) >= 3, files
    assert all(f.stat().st_size <= 2048 for f in files)
    assert len(json_rows(data)) == 12


def test_past_the_spool_limit_rows_are_dropped_counted_and_logged(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    """With the sink unreachable, rows wait in the spool up to its disk limit; past it they are
    dropped, counted, and logged loudly, while requests go on unharmed."""
    data = tmp_path / "events"
    dead_sink = f"http://127.0.0.1:{free_port()}"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  events={"dir": str(data), "spool_max_bytes": "4KiB", "batch_interval": "100ms"},
                  clickhouse={"url": dead_sink})
    try:
        with http_client(cfg.SRC_ALICE) as http:
            assert all(chat(http, inst.tm).status_code == 200 for _ in range(20))
        wait_for("drops counted", lambda: exporter_rows(inst.tm, "clickhouse")["dropped"] > 0)
        health = exporter_rows(inst.tm, "clickhouse")
        assert health["written"] == 0 and health["dropped"] >= 10, health
        assert inst.tm.metrics.value("tailmeter_exporter_spool_bytes", sink="clickhouse") <= 4096
        assert "USAGE ROWS LOST" in inst.tm.proc.log_text()
    finally:
        assert inst.tm.proc.stop() == 0

"""Exporter faults (issue 9): the proxy keeps serving whatever its sinks do, and every usage row
is either delivered exactly once or counted as dropped with a loud log, never silently lost.

ClickHouse is the real server (Debian's 18.16, private); for the faults a real server cannot be
made to show on demand (slow answers, HTTP 500) a relay sits in front of it
(harness/ch_relay.py). Each test has its own tailmeter and its own database.

- slow: every answer held 3 s; requests are not slowed, every row arrives once.
- HTTP 500 for a while, first refused outright, then after the server took the rows: retried
  until they land; counted once (ReplacingMergeTree on request_id; after a merge even the raw
  count is exact).
- a row the table refuses (its `tags` column altered to Array(UInt8), so a tagged caller's row
  no longer parses): the batch is split until the bad row is alone; the rest of its batch and
  every later batch arrive, the bad row is dropped, counted, logged and kept as N.rejected.
- disk full for the spool (a real 256 KiB tmpfs, root only): rows that cannot be journaled are
  dropped, counted and logged; the rest arrive; no torn line poisons a batch.
- OTLP collector gone (receiver killed mid-run): requests unharmed, lost spans counted in
  tailmeter_exporter_spans_total{result="dropped"} and logged.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import config as cfg
from harness.ch_relay import ClickHouseRelay
from harness.clickhouse import ClickHouse
from harness.clients import REQUEST_ID, http_client
from harness.events import Instance, Load, OtlpReceiver, chat, exporter_rows, json_rows, launch, wait_for
from harness.sim import Sim

SINK = "clickhouse"


@pytest.fixture
def relay(clickhouse_server: ClickHouse) -> Iterator[ClickHouseRelay]:
    r = ClickHouseRelay(clickhouse_server.url)
    yield r
    r.close()


def start(binaries: dict[str, Path], sim: Sim, tmp_path: Path, url: str, database: str, **events: str) -> Instance:
    return launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  clickhouse={"url": url, "database": database},
                  events={"dir": str(tmp_path / "events"), "batch_interval": "200ms", **events})


def assert_exactly_once(ch: ClickHouse, db: str, received: list[str]) -> None:
    """Every acknowledged response has one row, and nothing else is there, FINAL and by id; and
    after a forced merge the plain count agrees too."""
    n = len(received)
    wait_for("every row in ClickHouse", lambda: ch.request_counts(db)[1] >= n, timeout_s=60)
    _, final, distinct = ch.request_counts(db)
    assert (final, distinct) == (n, n)
    assert ch.request_ids(db) == set(received)
    ch.query(f"OPTIMIZE TABLE {db}.requests FINAL")
    assert ch.request_counts(db) == (n, n, n)


def stop(inst: Instance) -> None:
    code = inst.tm.proc.stop()
    assert code == 0, inst.tm.proc.describe_failure(f"exited with {code}")


def test_a_slow_clickhouse_slows_no_request(binaries: dict[str, Path], sim: Sim, tmp_path: Path,
                                            clickhouse_server: ClickHouse, relay: ClickHouseRelay) -> None:
    db = "tm_fault_slow"
    inst = start(binaries, sim, tmp_path, relay.url, db)
    relay.set_faults(delay_s=3.0)
    load = Load(inst.tm, threads=4, pause_s=0.01).start()
    try:
        wait_for("slow inserts", lambda: relay.counts()["delayed"] >= 3, timeout_s=30)
    finally:
        load.stop()
    try:
        assert load.failures == 0
        assert load.slowest_s < 1.5, f"a request waited {load.slowest_s:.2f}s behind a 3 s ClickHouse"
        relay.set_faults()
        assert_exactly_once(clickhouse_server, db, load.received)
        health = exporter_rows(inst.tm, SINK)
        assert health["dropped"] == 0 and health["written"] + health["replayed"] == len(load.received), health
    finally:
        stop(inst)


def test_500s_for_a_while_then_every_row_exactly_once(binaries: dict[str, Path], sim: Sim, tmp_path: Path,
                                                      clickhouse_server: ClickHouse, relay: ClickHouseRelay) -> None:
    db = "tm_fault_500"
    inst = start(binaries, sim, tmp_path, relay.url, db)
    load = Load(inst.tm, threads=4, pause_s=0.01).start()
    try:
        wait_for("rows flowing", lambda: exporter_rows(inst.tm, SINK)["written"] > 0)
        relay.set_faults(fail_500=True)  # refused: nothing lands
        wait_for("rows spooling", lambda: exporter_rows(inst.tm, SINK)["spooled"] > 0)
        time.sleep(2)
        relay.set_faults(fail_500=True, forward=True)  # the rows land, the answer says they did not
        failed = relay.counts()["failed"]
        wait_for("inserts that landed but failed", lambda: relay.counts()["failed"] >= failed + 2, timeout_s=30)
        relay.set_faults()
    finally:
        load.stop()
    try:
        assert load.failures == 0 and load.slowest_s < 2.0, (load.failures, load.slowest_s)
        assert_exactly_once(clickhouse_server, db, load.received)
        wait_for("the spool replayed", lambda: inst.tm.metrics.value("tailmeter_exporter_spool_bytes", sink=SINK) == 0)
        health = exporter_rows(inst.tm, SINK)
        assert health["dropped"] == 0 and health["spooled"] > 0, health
        assert health["written"] + health["replayed"] == len(load.received), health
        assert "sink is back; replaying the spool" in inst.tm.proc.log_text(limit=10**7)
    finally:
        stop(inst)


def test_a_row_clickhouse_refuses_is_dropped_alone(binaries: dict[str, Path], sim: Sim, tmp_path: Path,
                                                   clickhouse_server: ClickHouse) -> None:
    """Policy: a batch ClickHouse rejects as bad data is halved until each refused row is
    alone; the good rows are delivered, the refused ones counted as dropped, logged as USAGE
    ROWS LOST and kept in the spool directory as N.rejected. It never blocks later rows."""
    db = "tm_fault_bad_row"
    spool = tmp_path / "events" / "spool"
    # About 11 rows per batch (a batch is sealed once it has 11 or 2 s after its first row): the
    # bad row, sent sixth, sits inside the first.
    inst = start(binaries, sim, tmp_path, clickhouse_server.url, db, batch_rows=11, batch_interval="2s")
    try:
        # The health check at start created the table; now its schema drifts under the sink.
        clickhouse_server.query(f"ALTER TABLE {db}.requests MODIFY COLUMN tags Array(UInt8)")
        with http_client(cfg.SRC_ALICE) as alice, http_client(cfg.SRC_CI) as ci:
            good = [chat(alice, inst.tm).headers[REQUEST_ID] for _ in range(5)]
            bad = chat(ci, inst.tm).headers[REQUEST_ID]  # a tagged caller: tags ["tag:ci","tag:k8s"]
            good += [chat(alice, inst.tm).headers[REQUEST_ID] for _ in range(5 + 11)]
        wait_for("the good rows", lambda: clickhouse_server.request_counts(db)[1] >= len(good), timeout_s=30)
        assert clickhouse_server.request_ids(db) == set(good)
        health = exporter_rows(inst.tm, SINK)
        assert health == {"written": len(good), "spooled": 0, "replayed": 0, "dropped": 1}, health
        rejected = list(spool.glob("*.rejected"))
        assert len(rejected) == 1 and bad in rejected[0].read_text() and rejected[0].read_text().count("\n") == 1
        log = inst.tm.proc.log_text(limit=10**7)
        assert "splitting it to find the rows it refuses" in log
        assert "USAGE ROWS LOST" in log and "Cannot parse input" in log
    finally:
        stop(inst)


def _mount_tmpfs(path: Path, size: str) -> str | None:
    """Mounts a tmpfs of `size` on `path`; the reason it cannot, or None."""
    if os.geteuid() != 0:
        return "not root: cannot mount a small tmpfs for the spool"
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=10)
    return None if done.returncode == 0 else f"mount -t tmpfs not permitted here: {done.stderr.strip()}"


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=10).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def test_a_full_disk_drops_rows_counted_and_logged(binaries: dict[str, Path], sim: Sim, tmp_path: Path,
                                                   clickhouse_server: ClickHouse, relay: ClickHouseRelay) -> None:
    db = "tm_fault_disk"
    spool = tmp_path / "spool"
    why = _mount_tmpfs(spool, "256k")
    if why:
        pytest.skip(why)
    inst = None
    try:
        inst = start(binaries, sim, tmp_path, relay.url, db, spool_dir=str(spool))
        relay.set_faults(fail_500=True)  # rows pile up in the spool until the disk is full
        load = Load(inst.tm, threads=4).start()
        try:
            wait_for("the disk full", lambda: exporter_rows(inst.tm, SINK)["dropped"] >= 20, timeout_s=60)
        finally:
            load.stop()
        assert load.failures == 0 and load.slowest_s < 2.0, (load.failures, load.slowest_s)
        log = inst.tm.proc.log_text(limit=10**7)
        assert "USAGE ROWS LOST" in log and "No space left on device" in log
        relay.set_faults()
        wait_for("the spool replayed", lambda: inst.tm.metrics.value("tailmeter_exporter_spool_bytes", sink=SINK) == 0,
                 timeout_s=60)
        dropped = exporter_rows(inst.tm, SINK)["dropped"]
        rows, final, distinct = clickhouse_server.request_counts(db)
        # Every acknowledged response is a row or a counted drop; no torn line spoiled a batch.
        assert final == distinct == len(load.received) - dropped, (rows, final, distinct, len(load.received), dropped)
        assert clickhouse_server.request_ids(db) <= set(load.received)
        assert list(spool.glob("*.rejected")) == []
        # With room again, rows are journaled and delivered as before.
        with http_client(cfg.SRC_ALICE) as alice:
            late = chat(alice, inst.tm).headers[REQUEST_ID]
        wait_for("a row after the disk emptied", lambda: late in clickhouse_server.request_ids(db))
    finally:
        if inst is not None:
            stop(inst)
        _unmount(spool)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_otlp_collector_gone(binaries: dict[str, Path], sim: Sim, tmp_path: Path, protocol: str) -> None:
    receiver = OtlpReceiver(tmp_path)
    data = tmp_path / "events"
    endpoint = receiver.grpc if protocol == "grpc" else receiver.http
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  events={"dir": str(data), "batch_interval": "100ms"},
                  otlp={"endpoint": f"http://{endpoint}", "protocol": protocol})
    spans = lambda result: inst.tm.metrics.value("tailmeter_exporter_spans_total", result=result)  # noqa: E731
    try:
        with http_client(cfg.SRC_ALICE) as alice:
            before = [chat(alice, inst.tm).status_code for _ in range(5)]
            wait_for("spans exported", lambda: spans("exported") == 5 and len(receiver.spans()) == 5)
            receiver.proc.popen.kill()
            receiver.proc.popen.wait(timeout=10)
            after, slowest = [], 0.0
            for _ in range(20):
                started = time.monotonic()
                after.append(chat(alice, inst.tm).status_code)
                slowest = max(slowest, time.monotonic() - started)
        assert before + after == [200] * 25
        assert slowest < 1.0, f"a request waited {slowest:.2f}s on a dead collector"
        wait_for("every span accounted for", lambda: spans("exported") + spans("dropped") == 25, timeout_s=40)
        assert spans("dropped") >= 1
        assert "SPANS LOST" in inst.tm.proc.log_text(limit=10**7)
        wait_for("a row per request", lambda: len(json_rows(data)) == 25)
    finally:
        stop(inst)
        receiver.stop()

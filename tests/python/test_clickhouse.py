"""The ClickHouse sink against a real clickhouse-server (Debian's 18.16 package, started here as
a private process): exactly one row per response with the metrics' token totals, no row lost
or doubled across a 30-second database outage under load, and none lost when the proxy itself
is SIGKILLed mid-load, or stopped while the database is down (the spool replays at the next
start).

Rows are counted `FINAL` and by distinct `request_id`: the table is a ReplacingMergeTree on
request_id, so a replayed duplicate could exist until a merge, but is never counted twice.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.clickhouse import ClickHouse, running
from harness.events import (
    Instance, Load, exporter_rows, launch, metric_token_sums, mixed_requests, wait_for,
)
from harness.sim import Sim

# The outage of the acceptance test; CI runs it in full.
OUTAGE_S = float(os.environ.get("TAILMETER_CH_OUTAGE_S", "30"))


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    with running(tmp_path_factory.mktemp("clickhouse")) as server:
        yield server


def start(binaries: dict[str, Path], sim: Sim, tmp_path: Path, ch: ClickHouse, database: str, **events: str) -> Instance:
    return launch(
        binaries["tailmeter"], tmp_path, sim.base_url,
        clickhouse={"url": ch.url, "database": database},
        events={"dir": str(tmp_path / "events"), **events},
    )


def counts(ch: ClickHouse, database: str) -> tuple[int, int, int]:
    """(rows, rows FINAL, distinct request ids)."""
    row = ch.rows(f"SELECT count() AS n, uniqExact(request_id) AS ids FROM {database}.requests")[0]
    final = int(ch.scalar(f"SELECT count() FROM {database}.requests FINAL"))
    return int(row["n"]), final, int(row["ids"])


def ids_in(ch: ClickHouse, database: str) -> set[str]:
    return {r["request_id"] for r in ch.rows(f"SELECT DISTINCT request_id FROM {database}.requests")}


def test_one_row_per_response_with_the_metrics_totals(binaries: dict[str, Path], sim: Sim, tmp_path: Path, clickhouse: ClickHouse) -> None:
    db = "tm_rows"
    inst = start(binaries, sim, tmp_path, clickhouse, db, batch_interval="200ms")
    try:
        ids = [rid for _ in range(5) for rid in mixed_requests(inst.tm)]
        wait_for("every row in ClickHouse", lambda: counts(clickhouse, db)[1] >= len(ids))
        assert counts(clickhouse, db) == (len(ids), len(ids), len(ids))
        assert ids_in(clickhouse, db) == set(ids)
        sums = clickhouse.rows(
            f"SELECT sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cache_read_tokens) AS cache_read, "
            f"sum(cache_write_tokens) AS cache_write, sum(reasoning_tokens) AS reasoning FROM {db}.requests"
        )[0]
        assert {k: int(v) for k, v in sums.items()} == metric_token_sums(inst.tm)
        # Debian's 18.16 got the legacy DDL: same columns, the types it has.
        types = {r["name"]: r["type"] for r in clickhouse.rows(f"DESCRIBE TABLE {db}.requests")}
        assert (types["ts"], types["tags"], types["ttft_ms"]) == ("DateTime", "Array(String)", "Nullable(Float64)")
        engine = clickhouse.scalar(f"SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'requests'")
        assert engine == "ReplacingMergeTree"
        traced = clickhouse.rows(f"SELECT trace_id, tags FROM {db}.requests WHERE request_id = '{ids[0]}'")[0]
        assert traced["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert exporter_rows(inst.tm, "clickhouse") == {"written": len(ids), "spooled": 0, "replayed": 0, "dropped": 0}
    finally:
        assert inst.tm.proc.stop() == 0


@pytest.mark.slow
def test_an_outage_under_load_loses_and_doubles_nothing(binaries: dict[str, Path], sim: Sim, tmp_path: Path, clickhouse: ClickHouse) -> None:
    db = "tm_outage"
    inst = start(binaries, sim, tmp_path, clickhouse, db)
    load = Load(inst.tm, threads=4, pause_s=0.01).start()
    try:
        wait_for("rows flowing", lambda: exporter_rows(inst.tm, "clickhouse")["written"] > 0)
        clickhouse.stop()
        down_at = time.monotonic()
        wait_for("rows spooling", lambda: exporter_rows(inst.tm, "clickhouse")["spooled"] > 0, timeout_s=15)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        during = len(load.received)
        assert inst.tm.metrics.value("tailmeter_exporter_spool_bytes", sink="clickhouse") > 0
        clickhouse.start()
        time.sleep(2)
    finally:
        load.stop()
    try:
        assert load.failures == 0, "requests failed while ClickHouse was down"
        assert load.slowest_s < 2.0, f"a request waited {load.slowest_s:.2f}s"
        n = len(load.received)
        assert n > during > 0
        wait_for("the spool replayed", lambda: inst.tm.metrics.value("tailmeter_exporter_spool_bytes", sink="clickhouse") == 0
                 and counts(clickhouse, db)[1] >= n, timeout_s=60)
        assert counts(clickhouse, db) == (n, n, n)
        assert ids_in(clickhouse, db) == set(load.received)
        health = exporter_rows(inst.tm, "clickhouse")
        assert health["dropped"] == 0 and health["spooled"] > 0
        assert health["replayed"] == health["spooled"], health
        assert health["written"] + health["replayed"] == n, health
    finally:
        assert inst.tm.proc.stop() == 0


def test_a_sigkilled_proxy_replays_its_spool_at_restart(binaries: dict[str, Path], sim: Sim, tmp_path: Path, clickhouse: ClickHouse) -> None:
    db = "tm_sigkill"
    # A long interval keeps seconds of rows in the open batch when the proxy dies.
    inst = start(binaries, sim, tmp_path, clickhouse, db, batch_interval="3s")
    load = Load(inst.tm, threads=4).start()
    try:
        wait_for("some load", lambda: len(load.received) > 50)
        inst.tm.proc.popen.send_signal(signal.SIGKILL)
        inst.tm.proc.popen.wait(timeout=10)
    finally:
        load.stop()
    received = set(load.received)
    assert len(received) == len(load.received)
    inst.restart()
    try:
        deadline = time.monotonic() + 30
        while not ids_in(clickhouse, db) >= received and time.monotonic() < deadline:
            time.sleep(0.2)
        missing = received - ids_in(clickhouse, db)
        assert not missing, (
            f"{len(missing)} of {len(received)} responses have no row: {sorted(missing)[:3]}; "
            f"rows {counts(clickhouse, db)}, exporter {exporter_rows(inst.tm, 'clickhouse')}"
        )
        rows, final, distinct = counts(clickhouse, db)
        assert final == distinct and distinct <= load.attempts, (rows, final, distinct, load.attempts)
        assert exporter_rows(inst.tm, "clickhouse")["replayed"] > 0
    finally:
        assert inst.tm.proc.stop() == 0


def test_sigterm_with_clickhouse_down_keeps_the_rows_for_the_next_start(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path, clickhouse: ClickHouse
) -> None:
    """A redeploy while the database is down: SIGTERM still exits 0, after the exporters' flush
    grace (5 s), saying how many rows wait in the spool; the next start, with ClickHouse back,
    delivers each of them once."""
    db = "tm_down_at_exit"
    inst = start(binaries, sim, tmp_path, clickhouse, db, batch_interval="200ms")
    wait_for("the table", lambda: clickhouse.scalar(f"EXISTS TABLE {db}.requests") == "1")
    clickhouse.stop()
    try:
        received = mixed_requests(inst.tm) + mixed_requests(inst.tm)
        started = time.monotonic()
        code = inst.tm.proc.stop(grace_s=20.0)
        took = time.monotonic() - started
        assert code == 0, inst.tm.proc.describe_failure(f"exited with {code} after SIGTERM")
        assert took < 15.0, f"SIGTERM took {took:.1f}s with ClickHouse down"
        log = inst.tm.proc.log_path.read_text()
        assert "undelivered rows stay in the spool for the next start" in log, log[-3000:]
    finally:
        clickhouse.start()
    inst.restart()
    try:
        wait_for("the spool replayed", lambda: ids_in(clickhouse, db) >= set(received), timeout_s=30)
        assert ids_in(clickhouse, db) == set(received)
        _, final, distinct = counts(clickhouse, db)
        assert final == distinct == len(received)
        assert exporter_rows(inst.tm, "clickhouse")["replayed"] == len(received)
    finally:
        assert inst.tm.proc.stop() == 0

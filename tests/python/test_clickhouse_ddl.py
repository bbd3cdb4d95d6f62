"""The modern DDL and the dashboards' queries under ClickHouse 26 semantics, in process (PyPI
`chdb-core` embeds the real engine): the table the sink creates on modern servers
(exporters/src/clickhouse/requests.modern.sql, kept equal to the code by a Rust test) takes
the embedded sink's JSON lines as they are (`INSERT … FORMAT JSONEachRow`), keeps their
milliseconds, drops a replayed batch by its deduplication token, collapses duplicates under
`FINAL`, and every ClickHouse query of the Grafana dashboards runs against it (expanded by the
dashboards' own `tailmeter_dashboards.queries`, as Grafana's plugin would).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.events import json_rows, launch, mixed_requests, wait_for
from harness.procs import REPO
from harness.sim import Sim

sys.path.insert(0, str(REPO / "dashboards"))
from tailmeter_dashboards import queries as dq  # noqa: E402

chdb_session = pytest.importorskip("chdb.session", reason="chdb-core is in tests/python/requirements.txt")

DDL = REPO / "exporters" / "src" / "clickhouse" / "requests.modern.sql"
DASHBOARDS = REPO / "dashboards"
TABLE = "tailmeter.requests"
# Every dashboard variable at "All", and at one value each, for the two variants of each query.
ALL = {name: dq.ALL for name in ("identity", "tag", "provider", "model")}
SELECTED = {"identity": ["alice@example.com"], "tag": ["tag:ci"], "provider": ["openai"], "model": ["gpt-4o"]}
# The dashboards' time range: from 2000 to a day ahead, so every row is inside it.
SINCE_2000_S = 946_684_800


@pytest.fixture(scope="module")
def rows_file(binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JSON lines written by a real tailmeter's embedded sink."""
    workdir = tmp_path_factory.mktemp("ddl-rows")
    data = workdir / "events"
    inst = launch(binaries["tailmeter"], workdir, sim.base_url, events={"dir": str(data), "batch_interval": "100ms"})
    try:
        ids = mixed_requests(inst.tm) + mixed_requests(inst.tm)
        wait_for("rows written", lambda: len(json_rows(data)) >= len(ids))
    finally:
        assert inst.tm.proc.stop() == 0
    out = workdir / "rows.jsonl"
    out.write_text("".join(p.read_text() for p in sorted(data.glob("requests-*.jsonl"))))
    return out


class Chdb:
    """A chdb session with the modern table created from the checked-in DDL."""

    def __init__(self, path: Path):
        self.session = chdb_session.Session(str(path))
        self.session.query("CREATE DATABASE IF NOT EXISTS tailmeter")
        ddl = DDL.read_text().replace("CREATE TABLE IF NOT EXISTS requests", f"CREATE TABLE IF NOT EXISTS {TABLE}", 1)
        self.session.query(ddl)

    def query(self, sql: str, fmt: str = "JSONEachRow") -> list[dict]:
        text = str(self.session.query(sql, fmt))
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def scalar(self, sql: str) -> str:
        return str(self.session.query(sql, "TSV")).strip()

    def insert(self, lines: str, token: str | None = None) -> None:
        settings = f" SETTINGS insert_deduplication_token = '{token}'" if token else ""
        self.session.query(f"INSERT INTO {TABLE}{settings} FORMAT JSONEachRow\n{lines}")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Chdb]:
    session = Chdb(tmp_path / "chdb")
    yield session
    session.session.close()


def test_the_modern_table_loads_the_sinks_lines_as_they_are(db: Chdb, rows_file: Path) -> None:
    lines = rows_file.read_text()
    written = [json.loads(line) for line in lines.splitlines()]
    db.insert(lines, token="batch-1")
    assert int(db.scalar(f"SELECT count() FROM {TABLE}")) == len(written)
    types = {r["name"]: r["type"] for r in db.query(f"DESCRIBE TABLE {TABLE}")}
    assert types["ts"] == "DateTime64(3, 'UTC')"
    assert types["identity"] == "LowCardinality(String)" and types["tags"] == "Array(LowCardinality(String))"
    create = db.scalar(f"SHOW CREATE TABLE {TABLE}")
    for needle in ("ReplacingMergeTree", "PARTITION BY toYYYYMM(ts)", "TTL", "CODEC(T64, ZSTD(1))"):
        assert needle in create, create
    stored = {r["request_id"]: r for r in db.query(f"SELECT request_id, toString(ts) AS ts, tags, stream, ttft_ms FROM {TABLE}")}
    for row in written:
        assert stored[row["request_id"]]["ts"] == row["ts"], "milliseconds kept"
        assert (stored[row["request_id"]]["tags"], stored[row["request_id"]]["stream"]) == (row["tags"], row["stream"])
    sums = db.query(f"SELECT sum(input_tokens) AS i, sum(output_tokens) AS o FROM {TABLE}")[0]
    assert (int(sums["i"]), int(sums["o"])) == (sum(r["input_tokens"] for r in written), sum(r["output_tokens"] for r in written))


def test_a_replayed_batch_is_not_counted_twice(db: Chdb, rows_file: Path) -> None:
    lines = rows_file.read_text()
    n = len(lines.splitlines())
    db.insert(lines, token="tailmeter-0123456789abcdef-1-1")
    db.insert(lines, token="tailmeter-0123456789abcdef-1-1")  # the replay of a batch that had landed
    assert int(db.scalar(f"SELECT count() FROM {TABLE}")) == n, "dropped at insert by its token"
    db.insert(lines)  # a copy without a token (an old server's path): collapsed by the engine
    assert int(db.scalar(f"SELECT count() FROM {TABLE} FINAL")) == n
    assert int(db.scalar(f"SELECT uniqExact(request_id) FROM {TABLE}")) == n


def dashboard_queries() -> list[dq.Query]:
    """Every ClickHouse target and variable query of the dashboards."""
    return [q for path in sorted(DASHBOARDS.glob("*.json")) for q in dq.queries(path.name, json.loads(path.read_text()))
            if q.datasource == "grafana-clickhouse-datasource"]


@pytest.mark.skipif(not list(DASHBOARDS.glob("*.json")), reason="no dashboards in this checkout")
def test_every_dashboard_query_runs_on_the_modern_table(db: Chdb, rows_file: Path) -> None:
    db.insert(rows_file.read_text(), token="batch")
    queries = dashboard_queries()
    assert queries and all(TABLE in q.text for q in queries), "the dashboards query tailmeter.requests"
    to_s = int(time.time()) + 86_400
    failures = []
    for query in queries:
        for variables in (ALL, SELECTED):
            sql = dq.clickhouse_sql(query.text, variables, SINCE_2000_S, to_s)
            try:
                db.query(sql)
            except Exception as err:  # noqa: BLE001 - every failure is reported with its query
                failures.append(f"{query}: {err}\n{sql}")
    assert not failures, "\n\n".join(failures)
    # And one answer checked: the per-identity totals match the rows.
    per_identity = db.query(f"SELECT identity, count() AS n FROM {TABLE} GROUP BY identity ORDER BY identity")
    assert {r["identity"] for r in per_identity} == {"alice@example.com", "tag:ci,tag:k8s"}

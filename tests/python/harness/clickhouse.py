"""A private clickhouse-server (Debian's package) for the ClickHouse sink tests.

Started as a normal process from a temporary directory holding its own config, users file,
data and logs, on OS-assigned loopback ports, so it never touches a system server. It can be
stopped and started again on the same ports and data (the outage tests). Queries go over its
HTTP interface.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from .procs import Process, free_port

START_TIMEOUT_S = 60.0

CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


def find_server() -> Path | None:
    """The clickhouse-server binary, when installed."""
    for candidate in (os.environ.get("CLICKHOUSE_SERVER_BIN"), shutil.which("clickhouse-server"), "/usr/sbin/clickhouse-server"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


class ClickHouse:
    """One private server; `start`/`stop` may be called repeatedly."""

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.dir = workdir
        self.http_port = free_port()
        tcp_port = free_port()
        for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        (workdir / "config.xml").write_text(CONFIG.format(dir=workdir, http_port=self.http_port, tcp_port=tcp_port))
        (workdir / "users.xml").write_text(USERS)
        self.proc: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.starts += 1
        argv = [str(self.binary), f"--config-file={self.dir / 'config.xml'}"]
        self.proc = Process("clickhouse-server", argv, self.dir / f"stdout.{self.starts}.log", self.dir, dict(os.environ))
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx2.Client(timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if not self.proc.alive():
                    break
                try:
                    if http.get(f"{self.url}/ping").text.strip() == "Ok.":
                        return
                except httpx2.TransportError:
                    pass
                time.sleep(0.1)
        err = (self.dir / "log" / "server.err.log")
        tail = err.read_text(errors="replace")[-4000:] if err.exists() else ""
        raise RuntimeError(self.proc.describe_failure("did not answer /ping") + "\n--- server.err.log ---\n" + tail)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace_s=30.0)
            self.proc = None

    def query(self, sql: str) -> str:
        with httpx2.Client(timeout=30.0, trust_env=False) as http:
            resp = http.post(self.url, content=sql.encode())
            if resp.status_code != 200:
                raise RuntimeError(f"ClickHouse answered {resp.status_code} to {sql!r}: {resp.text}")
            return resp.text

    def rows(self, sql: str) -> list[dict]:
        """`sql` (without FORMAT) as a list of dicts."""
        text = self.query(sql + " FORMAT JSONEachRow")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def scalar(self, sql: str) -> str:
        return self.query(sql).strip()

    def request_counts(self, database: str) -> tuple[int, int, int]:
        """Rows of `database.requests`: (all, FINAL, distinct request ids). A replayed duplicate
        shows in the first until a merge, never in the other two."""
        row = self.rows(f"SELECT count() AS n, uniqExact(request_id) AS ids FROM {database}.requests")[0]
        final = int(self.scalar(f"SELECT count() FROM {database}.requests FINAL"))
        return int(row["n"]), final, int(row["ids"])

    def request_ids(self, database: str) -> set[str]:
        return {r["request_id"] for r in self.rows(f"SELECT DISTINCT request_id FROM {database}.requests")}


@contextmanager
def running(workdir: Path) -> Iterator[ClickHouse]:
    """A private clickhouse-server in `workdir` for the block; the test is skipped when the
    server is not installed."""
    binary = find_server()
    if binary is None:
        pytest.skip("clickhouse-server is not installed (.ci/run installs Debian's package)")
    server = ClickHouse(binary, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""Load runs: wrk at fixed concurrency for throughput, oha at a fixed rate for latency. Each run
also records the CPU time the proxy (and the upstream) spent and the proxy's peak RSS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import procs
from .bodies import Workload

HERE = Path(__file__).resolve().parent.parent
CONCURRENCY = 64


@dataclass
class Run:
    """One bounded load run of one workload through one setup."""

    setup: str
    workload: str
    kind: str  # "max" (wrk, fixed concurrency), "rate" or "light" (oha, fixed rates)
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    cpu_s: float
    upstream_cpu_s: float
    peak_rss_kib: int
    rate: float | None = None
    round: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def oha_binary() -> str | None:
    return shutil.which("oha") or next(
        (p for p in [os.path.expanduser("~/.cargo/bin/oha")] if os.path.exists(p)), None)


class Meter:
    """CPU and peak memory of the proxy and upstream around one run."""

    def __init__(self, proxy_pids: list[int], upstream_pids: list[int]):
        self.proxy, self.upstream = proxy_pids, upstream_pids
        procs.reset_peak(self.proxy)
        self.cpu0 = procs.cpu_seconds(self.proxy)
        self.up0 = procs.cpu_seconds(self.upstream)

    def finish(self) -> tuple[float, float, int]:
        return (procs.cpu_seconds(self.proxy) - self.cpu0,
                procs.cpu_seconds(self.upstream) - self.up0,
                procs.memory_kib(self.proxy, "VmHWM"))


def settle(pids: list[int], limit: float = 60.0) -> float:
    """Waits until the proxy is idle (work left by cut-off requests of the last run done), at most
    `limit` seconds; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = procs.cpu_seconds(pids)
        time.sleep(0.5)
        if procs.cpu_seconds(pids) - before < 0.05:
            break
    return time.monotonic() - start


def wrk(url: str, workload: Workload, requests_dir: Path, seconds: float, connections: int = CONCURRENCY
        ) -> dict:
    """One wrk run; its totals and latency percentiles (µs)."""
    env = dict(os.environ, BENCH_BODY=str(requests_dir / workload.body_file),
               BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in workload.headers.items()))
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(HERE / "wrk.lua"), url + workload.path]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[len("BENCH "):])
    raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")


def oha(url: str, workload: Workload, requests_dir: Path, seconds: float, rate: float) -> dict:
    """One oha run at `rate` requests/s (latency corrected for coordinated omission)."""
    binary = oha_binary()
    if binary is None:
        raise RuntimeError("oha is not installed (tests/bench/run installs it)")
    argv = [binary, "-z", f"{max(1, round(seconds))}s", "-c", str(CONCURRENCY), "-q", f"{rate:.0f}",
            "--latency-correction", "--no-tui", "--output-format", "json", "-m", "POST",
            "-D", str(requests_dir / workload.body_file)]
    for name, value in workload.headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(argv + [url + workload.path], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"oha failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def measure_max(setup, workload: Workload, requests_dir: Path, seconds: float, upstream_pids: list[int],
                warmup: float, round_: int = 0) -> Run:
    """Throughput at CONCURRENCY connections."""
    if warmup > 0:
        wrk(setup.url, workload, requests_dir, warmup)
    settle(setup.pids())
    meter = Meter(setup.pids(), upstream_pids)
    result = wrk(setup.url, workload, requests_dir, seconds)
    cpu, up_cpu, peak = meter.finish()
    secs = result["duration_us"] / 1e6
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(setup.name, workload.key, "max", result["requests"], secs, result["requests"] / secs,
               result["p50_us"] / 1e3, result["p99_us"] / 1e3, result["p999_us"] / 1e3, errors,
               cpu, up_cpu, peak, round=round_)


def measure_rate(setup, workload: Workload, requests_dir: Path, seconds: float, upstream_pids: list[int],
                 rate: float, kind: str = "rate", round_: int = 0) -> Run:
    """Latency at a fixed rate."""
    settle(setup.pids())
    meter = Meter(setup.pids(), upstream_pids)
    result = oha(setup.url, workload, requests_dir, seconds, rate)
    cpu, up_cpu, peak = meter.finish()
    summary = result.get("summary", {})
    pct = result.get("latencyPercentiles", {})
    codes = result.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if str(code).startswith("2"))
    # Requests still in flight when the duration ends are cut by oha itself: not failures.
    errors = {k: n for k, n in result.get("errorDistribution", {}).items() if "deadline" not in k}
    failed = sum(codes.values()) - ok + sum(errors.values())
    total = summary.get("total", seconds)
    ms = lambda key: (pct.get(key) or 0.0) * 1e3  # noqa: E731 - oha reports seconds
    return Run(setup.name, workload.key, kind, ok, total, ok / total if total else 0.0,
               ms("p50"), ms("p99"), ms("p99.9"), failed, cpu, up_cpu, peak, rate=rate, round=round_)

"""Leak checks for fault tests: a process's descriptors, threads and memory, before and after
the same burst of faulty calls, made from several threads at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .clients import Tailmeter
from .events import wait_for


@dataclass(frozen=True)
class Usage:
    """What a process holds: open descriptors, threads, resident memory (KiB)."""

    fds: int
    threads: int
    rss_kib: int


def usage(pid: int) -> Usage:
    """What `pid` holds now (from /proc)."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return Usage(fds, int(status["Threads"]), int(status["VmRSS"].split()[0]))


def burst(calls: list[Callable[[], None]], threads: int = 4, rounds: int = 2, timeout_s: float = 120) -> None:
    """Every call `rounds` times over from each of `threads` threads; raises the first failure."""
    failures: list[BaseException] = []

    def worker() -> None:
        for call in calls * rounds:
            try:
                call()
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout_s)
    assert not any(t.is_alive() for t in workers), f"the burst did not finish in {timeout_s} s"
    assert not failures, failures


def assert_no_leak(tm: Tailmeter, run_burst: Callable[[], None], max_rss_growth_kib: int | None = None) -> None:
    """Runs `run_burst` once to warm up (pools, buffers, lazily started threads), then again:
    descriptors (within 8) and threads must come back to where they were, and resident memory
    grow by less than `max_rss_growth_kib` when given."""
    pid = tm.proc.popen.pid
    idle = lambda: tm.metrics.value("tailmeter_inflight_requests") == 0  # noqa: E731
    run_burst()
    wait_for("no request in flight", idle, 30)
    time.sleep(1.0)
    before = usage(pid)
    run_burst()
    wait_for("no request in flight", idle, 30)
    wait_for(
        f"descriptors and threads back to {before.fds} and {before.threads} (now {usage(pid)})",
        lambda: usage(pid).fds <= before.fds + 8 and usage(pid).threads <= before.threads, 30, 0.5,
    )
    if max_rss_growth_kib is not None:
        after = usage(pid).rss_kib
        assert after - before.rss_kib < max_rss_growth_kib, \
            f"resident memory grew from {before.rss_kib} KiB to {after} KiB over one burst"
    assert tm.proc.alive() and tm.healthz() == 200

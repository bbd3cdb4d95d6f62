"""Slow streams: memory per open stream under many concurrent dripping streams, and time to
first token. Both use the `-slow` models, which bench-upstream answers one event per drip
interval (the first at once).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from . import procs
from .bodies import Workload, request


def raw_request(url: str, workload: Workload) -> bytes:
    """The HTTP/1.1 request of `workload` for the dripping model, closing the connection after."""
    parts = urlsplit(url)
    body = request(workload, slow=True)
    head = [f"POST {workload.path} HTTP/1.1", f"host: {parts.netloc}", f"content-length: {len(body)}",
            "connection: close"] + [f"{k}: {v}" for k, v in workload.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Memory:
    """RSS of a proxy before and while `streams` streams are open."""

    setup: str
    streams: int
    opened: int
    idle_rss_kib: int
    open_rss_kib: int
    per_stream_kib: float
    seconds_to_open: float

    def to_json(self) -> dict:
        return asdict(self)


async def _hold(host: str, port: int, payload: bytes, opened: list[int], failures: list[str],
                gate: asyncio.Semaphore) -> None:
    try:
        async with gate:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
            writer.write(payload)
            seen = b""
            while b"data:" not in seen:
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                if not chunk:
                    raise ConnectionError(f"closed before the first event: {seen[:200]!r}")
                seen = (seen + chunk)[-4096:]
        opened[0] += 1
        while await reader.read(65536):
            pass
        writer.close()
    except (OSError, asyncio.TimeoutError, ConnectionError) as error:
        failures.append(repr(error))


async def _streams(url: str, workload: Workload, count: int, pids: list[int], settle: float,
                   timeout: float) -> tuple[int, int, float, list[str]]:
    parts = urlsplit(url)
    payload = raw_request(url, workload)
    opened, failures = [0], []
    gate = asyncio.Semaphore(200)  # connects in flight at once, so no listen backlog overflows
    start = time.monotonic()
    tasks = [asyncio.create_task(_hold(parts.hostname, parts.port, payload, opened, failures, gate))
             for _ in range(count)]
    deadline = start + timeout
    while opened[0] + len(failures) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    took = time.monotonic() - start
    await asyncio.sleep(settle)
    samples = []
    for _ in range(5):
        samples.append(procs.memory_kib(pids, "VmRSS"))
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return opened[0], max(samples), took, failures


def memory_per_stream(setup, workload: Workload, count: int, settle: float = 2.0) -> Memory:
    """Opens `count` dripping streams through `setup` and reads its RSS while they are open."""
    warm = raw_request(setup.url, workload)
    for _ in range(5):  # the first requests allocate pools and caches, not per-stream memory
        first_event(setup.url, warm)
    time.sleep(1.0)
    pids = setup.pids()
    idle = procs.memory_kib(pids, "VmRSS")
    opened, rss, took, failures = asyncio.run(_streams(setup.url, workload, count, pids, settle, 60))
    if failures:
        print(f"  {setup.name}: {len(failures)} streams failed, first: {failures[0]}")
    per = (rss - idle) / opened if opened else float("nan")
    return Memory(setup.name, count, opened, idle, rss, per, took)


def first_event(url: str, payload: bytes) -> float:
    """Seconds from sending `payload` to the first `data:` byte of the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        sock.sendall(payload)
        seen = b""
        while b"data:" not in seen:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before the first event: {seen[:300]!r}")
            seen = (seen + chunk)[-4096:]
        return time.perf_counter() - start


@dataclass
class Ttft:
    """Time to first event through a setup, over `samples` sequential requests."""

    setup: str
    workload: str
    samples: int
    p50_ms: float
    p99_ms: float

    def to_json(self) -> dict:
        return asdict(self)


def ttft(setup, workload: Workload, samples: int) -> Ttft:
    payload = raw_request(setup.url, workload)
    first_event(setup.url, payload)
    times = []
    for _ in range(samples):
        times.append(first_event(setup.url, payload) * 1e3)
        time.sleep(0.002)
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return Ttft(setup.name, workload.key, samples, statistics.median(times), p99)

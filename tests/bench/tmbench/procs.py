"""Processes the benchmark starts, and what /proc says about them.

Every child logs to a file in the work directory, runs in its own session and is stopped by its
own pid (SIGTERM, then SIGKILL after a bounded wait). CPU time and memory are read for a
process and all its descendants (nginx's workers, LiteLLM's uvicorn workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that were free a moment ago: all are bound at once, so
    the kernel cannot offer one of them twice."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


class Child:
    """One started process, logging to `log`."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                          start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def first_line(self, prefix: str, timeout: float = 30.0) -> str:
        """The first log line starting with `prefix`, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line
            if not self.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {prefix!r} line\n{self.tail()}")

    def stop(self, grace: float = 15.0) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def wait_http(url: str, timeout: float, child: Child, ok=lambda status: status < 500) -> None:
    """Polls `url` until it answers (any status `ok` accepts)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not child.alive():
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if ok(resp.status):
                    return
        except urllib.error.HTTPError as error:
            if ok(error.code):
                return
            last = str(error)
        except OSError as error:
            last = str(error)
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} ({last})\n{child.tail()}")


def tree(root: int) -> list[int]:
    """`root` and its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` (each process's own, not its reaped children's)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def memory_kib(pids: list[int], key: str) -> int:
    """The sum of `key` (VmRSS, VmHWM) over `pids`, in KiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(key + ":"):
                total += int(line.split()[1])
    return total


def reset_peak(pids: list[int]) -> None:
    """Resets VmHWM to the current RSS (Linux `clear_refs` 5)."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


@contextlib.contextmanager
def perf_recording(pid: int, out: Path, options: list[str]) -> Iterator[None]:
    """`perf record` attached to `pid` (with `options`, writing `out`) around the block: started
    and given half a second to attach before the block, stopped (SIGINT) and waited for after."""
    perf = subprocess.Popen(["perf", "record", *options, "-o", str(out), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait(120)

"""`python3 -m tmbench.steps`: where a request's time goes inside tailmeter, step by step.

One workload runs through tailmeter at a fixed, low rate (oha) while `perf record` takes the
proxy's system-call tracepoints (accept4, fcntl, close, recvfrom, sendto, writev). Each request is
followed on the worker thread that serves it (tailmeter keeps a connection on one thread) from
the client's first read to the answer's send to the client, and cut into steps:

- body read: the client's first read to its last before the provider send (0 for a small body);
- check and route: that last read to the first send to the provider;
- provider send: the first send to the provider to the last;
- provider: the last send to the provider to the first read of its answer;
- answer and record: that read to the first send to the client.

Requests whose events interleave with another request's on the same thread are left out, so keep
the rate low. Each build given with `--bin-dir` is measured in turn, `--rounds` times. Run from
tests/bench after `tests/bench/run` built the binaries:

    python3 -m tmbench.steps --bin-dir A --bin-dir B --workload d --rate 101
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import bodies, load, procs, setups

STEPS = ("body read", "check and route", "provider send", "provider", "answer and record", "total")
SYSCALLS = ("accept4", "fcntl", "close", "recvfrom", "sendto", "writev")
# fcntl's command that duplicates a descriptor: tailmeter moves each accepted client socket to
# the runtime of the thread that serves it through such a copy (proxy/src/home.rs).
F_DUPFD_CLOEXEC = 1030
# Socket writes only: `write` is the journal's and the runtimes' wake-ups.
SENDS = ("sendto", "writev")
TRACE_LINE = re.compile(r"\s*(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)")


@dataclass
class Call:
    """One finished system call of the proxy: when it began and ended (µs), on which thread."""

    start: float
    end: float
    tid: int
    name: str
    fd: int
    ret: int
    cmd: int = -1


def calls_from_perf_script(text: str) -> list[Call]:
    """Pairs the enter and exit tracepoints of `perf script -F tid,time,event,trace` output."""
    entered: dict[int, tuple[float, str, int, int]] = {}
    calls = []
    for line in text.splitlines():
        m = TRACE_LINE.match(line)
        if not m:
            continue
        tid, at, side, name, rest = int(m[1]), float(m[2]) * 1e6, m[3], m[4], m[5]
        if side == "enter":
            fd = re.search(r"fd: (0x[0-9a-f]+)", rest)
            cmd = re.search(r"cmd: (0x[0-9a-f]+)", rest)
            entered[tid] = (at, name, int(fd[1], 16) if fd else -1, int(cmd[1], 16) if cmd else -1)
            continue
        if tid not in entered:
            continue
        start, name, fd, cmd = entered.pop(tid)
        ret = int(rest.split()[-1], 0) if rest.split() else 0
        calls.append(Call(start, at, tid, name, fd, ret - (1 << 64) if ret >= 1 << 63 else ret, cmd))
    calls.sort(key=lambda c: c.start)
    return calls


@dataclass
class Request:
    """One request being followed on a thread."""

    client: int
    first_read: float
    last_read: float
    provider: int = -1
    first_send: float = 0.0
    last_send: float = 0.0
    answer: float = 0.0


@dataclass
class Steps:
    """Each step's durations (µs), one per request followed through, and how many were left out."""

    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    interleaved: int = 0


def steps(calls: list[Call]) -> Steps:
    """Follows each request through `calls` (from [`calls_from_perf_script`])."""
    clients: set[int] = set()
    open_: dict[int, Request] = {}
    out = Steps()

    def drop(tid: int) -> None:
        if open_.pop(tid, None) is not None:
            out.interleaved += 1

    for c in calls:
        if c.name == "accept4" or c.name == "fcntl":
            if c.ret >= 0 and (c.name == "accept4" or (c.cmd == F_DUPFD_CLOEXEC and c.fd in clients)):
                clients.add(c.ret)
            continue
        if c.name == "close":
            clients.discard(c.fd)
            continue
        r = open_.get(c.tid)
        is_client = c.fd in clients
        if c.name == "recvfrom" and c.ret > 0 and is_client:
            if r is None or r.provider >= 0 or r.client != c.fd:
                if r is not None:
                    drop(c.tid)
                open_[c.tid] = Request(c.fd, c.start, c.end)
            else:
                r.last_read = c.end
        elif r is None or c.ret <= 0:
            continue
        elif c.name in SENDS and not is_client and r.answer == 0.0:
            if r.provider not in (-1, c.fd):
                drop(c.tid)
                continue
            r.provider = c.fd
            r.first_send = r.first_send or c.start
            r.last_send = c.end
        elif c.name == "recvfrom" and c.fd == r.provider and r.answer == 0.0:
            r.answer = c.end
        elif c.name in SENDS and is_client:
            if c.fd != r.client or r.answer == 0.0:
                drop(c.tid)
                continue
            for step, took in zip(STEPS, (r.last_read - r.first_read, r.first_send - r.last_read,
                                          r.last_send - r.first_send, r.answer - r.last_send,
                                          c.start - r.answer, c.start - r.first_read)):
                out.times[step].append(took)
            del open_[c.tid]
    return out


def quantile(values: list[float], q: float) -> float:
    """The value below which a fraction `q` of `values` lies (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(bin_dir: Path, upstream_bin: Path, workload: bodies.Workload, rate: float, seconds: float,
            threads: int) -> tuple[Steps, dict]:
    """One run of `workload` at `rate` through the tailmeter in `bin_dir`, traced."""
    with tempfile.TemporaryDirectory(prefix="tailmeter-steps-") as tmp:
        work = Path(tmp)
        answers, requests = bodies.write_all(work)
        data = work / "perf.data"
        with setups.tailmeter_on_upstream(bin_dir, upstream_bin, work, answers, threads) as proxy:
            load.wrk(proxy.url, workload, requests, 2)
            events = ",".join(f"syscalls:sys_{side}_{name}" for name in SYSCALLS for side in ("enter", "exit"))
            with procs.perf_recording(proxy.child.pid, data, ["-e", events]):
                latency = load.oha(proxy.url, workload, requests, seconds, rate)
        text = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,time,event,trace"],
                              capture_output=True, text=True, timeout=600).stdout
    return steps(calls_from_perf_script(text)), latency


def main() -> int:
    p = argparse.ArgumentParser(prog="python3 -m tmbench.steps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", type=Path, action="append", required=True)
    p.add_argument("--upstream", type=Path,
                   default=Path.home() / ".cache/tailmeter-bench/target/release/bench-upstream")
    p.add_argument("--workload", default="d", choices=sorted(bodies.BY_KEY))
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    workload = bodies.BY_KEY[args.workload]
    for round_ in range(1, args.rounds + 1):
        for bin_dir in args.bin_dir:
            found, latency = measure(bin_dir, args.upstream, workload, args.rate, args.seconds, args.threads)
            pct = latency["latencyPercentiles"]
            print(f"round {round_}, {bin_dir}: client p50 {pct['p50'] * 1e3:.3f} ms, p99 {pct['p99'] * 1e3:.3f} ms; "
                  f"{len(found.times['total'])} requests followed, {found.interleaved} left out")
            for step in STEPS:
                values = found.times[step]
                if values:
                    print(f"  {step:18s} p50 {statistics.median(values):8.1f}  p90 {quantile(values, 0.9):8.1f}  "
                          f"p99 {quantile(values, 0.99):8.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

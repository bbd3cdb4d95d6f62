"""The soak: many concurrent dripping streams through tailmeter for a long time, then four checks.

Starts a private ClickHouse server, provider-sim in faithful mode (`--synthesize`, so every answer
reports its usage in `x-sim-usage`) and tailmeter with the ClickHouse sink (the e2e harness's
pieces), then holds `--streams` streams open for `--duration`: each client task sends a streamed
chat completion (without include_usage: tailmeter injects it and strips it back out) or a
streamed Anthropic message, alternately, asking the simulator to pause `--delay-ms` between
events, reads it to its end and opens the next at once. tailmeter's RSS is sampled every
`--sample-every` seconds. Then:

1. RSS flat: of the samples after the warm-up (`--warmup`, default a fifth of the duration, never
   before every stream has opened), the median of the last third is within `--rss-tolerance`
   (10 %) of the median of the first third.
2. Zero client errors: every request answered 200 and every stream read to its proper end
   (`data: [DONE]`, `message_stop`), with a request id and the simulator's usage header.
3. Tokens: tailmeter_tokens_total on /metrics, per type, equals the sum of the simulator's
   `x-sim-usage` over every request (and of /_sim/requests when it still holds them all).
4. Rows: the ClickHouse table holds exactly one row per request (count, FINAL and distinct ids,
   and the ids are the ones the clients were given).

Prints the figures and each check's verdict; exits 1 when a check fails. Run it with `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from harness import config as cfg  # noqa: E402
from harness.clickhouse import ClickHouse, find_server  # noqa: E402
from harness.clients import CLIENT_ANTHROPIC_KEY, CLIENT_OPENAI_KEY, REQUEST_ID  # noqa: E402
from harness.events import PROVIDER_ENV, Instance, launch  # noqa: E402
from harness.metrics import TOKEN_TYPES, Metrics  # noqa: E402
from harness.procs import REPO, start_sim  # noqa: E402

USAGE_HEADER = "x-sim-usage"
DATABASE = "soak"
# How long the end may take: streams in flight finish, rows reach ClickHouse.
DRAIN_S = 120.0
ROWS_WAIT_S = 120.0
OPENAI = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "content-type": "application/json"}
ANTHROPIC = {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}


def seconds(text: str) -> float:
    """`30m`, `2h`, `90s` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


@dataclass
class Tally:
    """What the clients saw."""

    started: int = 0
    completed: int = 0
    open_streams: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    tokens: Counter[str] = field(default_factory=Counter)
    request_ids: set[str] = field(default_factory=set)
    # The number of streams to hold, and when that many were first seen open.
    target: int = 0
    all_open_at: float | None = None

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, detail[:300])


class Streams:
    """The client side: `n` tasks, each holding one stream open at a time until the deadline."""

    def __init__(self, base_url: str, n: int, delay_ms: int, ramp_s: float, tally: Tally):
        self.base_url, self.n, self.delay_ms, self.ramp_s, self.tally = base_url, n, delay_ms, ramp_s, tally
        self.fault = {"x-sim-fault": f"chunk-delay-ms={delay_ms}"}

    def request(self, worker: int, serial: int) -> tuple[str, dict, dict, bytes]:
        """(path, headers, body, the bytes a complete stream ends with) of the next stream."""
        prompt = f"soak worker {worker} stream {serial}: say something short"
        if worker % 2 == 0:
            body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}]}
            return "/v1/chat/completions", OPENAI, body, b"data: [DONE]\n\n"
        body = {"model": "claude-haiku-4-5", "max_tokens": 256, "stream": True,
                "messages": [{"role": "user", "content": prompt}]}
        return "/v1/messages", ANTHROPIC, body, b"message_stop"

    async def one(self, http: httpx2.AsyncClient, worker: int, serial: int) -> bool:
        path, headers, body, end = self.request(worker, serial)
        t = self.tally
        t.started += 1
        t.open_streams += 1
        try:
            async with http.stream("POST", self.base_url + path, json=body, headers={**headers, **self.fault}) as resp:
                tail = b""
                async for chunk in resp.aiter_raw():
                    tail = (tail + chunk)[-256:]
                rid, usage = resp.headers.get(REQUEST_ID), resp.headers.get(USAGE_HEADER)
                if rid:
                    t.request_ids.add(rid)
                if resp.status_code != 200:
                    t.error(f"HTTP {resp.status_code}", tail.decode(errors="replace"))
                    return False
                if end not in tail:
                    t.error("stream ended early", tail.decode(errors="replace"))
                    return False
                if not rid or not usage:
                    t.error("missing header", f"{REQUEST_ID}={rid} {USAGE_HEADER}={usage}")
                    return False
                for kind, value in json.loads(usage).items():
                    t.tokens[kind] += int(value)
                t.completed += 1
                return True
        except (httpx2.HTTPError, OSError, ValueError) as err:
            t.error(type(err).__name__, repr(err))
            return False
        finally:
            t.open_streams -= 1

    async def worker(self, http: httpx2.AsyncClient, worker: int, deadline: float) -> None:
        await asyncio.sleep(self.ramp_s * worker / self.n)
        serial = 0
        while time.monotonic() < deadline:
            serial += 1
            if not await self.one(http, worker, serial):
                await asyncio.sleep(0.5)

    async def run(self, deadline: float) -> None:
        limits = httpx2.Limits(max_connections=self.n + 16, max_keepalive_connections=self.n + 16)
        timeout = httpx2.Timeout(30.0, read=max(60.0, self.delay_ms / 1000 * 10))
        async with httpx2.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as http:
            await asyncio.gather(*(self.worker(http, i, deadline) for i in range(self.n)))


def proc_status(pid: int) -> dict[str, int]:
    """RSS (KiB), open descriptors and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return {"rss_kib": rss, "fds": fds, "threads": threads}


async def sample(pid: int, every_s: float, started: float, tally: Tally, samples: list[dict], stop: asyncio.Event) -> None:
    """Samples the proxy every `every_s` and prints a progress line every 30 s."""
    last_print = 0.0
    while not stop.is_set():
        now = time.monotonic() - started
        row = {"t": round(now, 1), **proc_status(pid), "open": tally.open_streams, "completed": tally.completed}
        samples.append(row)
        if tally.all_open_at is None and tally.open_streams >= tally.target:
            tally.all_open_at = now
        if now - last_print >= 30:
            last_print = now
            print(f"  t={now:6.0f}s open {tally.open_streams:5d} completed {tally.completed:7d} "
                  f"errors {sum(tally.errors.values())} rss {row['rss_kib'] / 1024:.1f} MiB fds {row['fds']}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass


def rss_check(samples: list[dict], warmup_s: float, tolerance: float) -> tuple[bool, str]:
    """Median RSS of the last third of the post-warm-up samples against that of the first third."""
    after = [s["rss_kib"] for s in samples if s["t"] >= warmup_s]
    if len(after) < 6:
        return False, f"only {len(after)} samples after the warm-up ({warmup_s:.0f} s): run longer"
    third = len(after) // 3
    first, last = statistics.median(after[:third]), statistics.median(after[-third:])
    change = (last - first) / first
    text = (f"after warm-up ({warmup_s:.0f} s, {len(after)} samples): median first third {first / 1024:.1f} MiB, "
            f"last third {last / 1024:.1f} MiB ({change:+.1%}); min {min(after) / 1024:.1f}, max {max(after) / 1024:.1f} MiB")
    return abs(change) <= tolerance, text


def wait_rows(ch: ClickHouse, want: int) -> int:
    """Polls the table until it holds `want` rows (or ROWS_WAIT_S passes); the final count."""
    deadline = time.monotonic() + ROWS_WAIT_S
    rows = 0
    while time.monotonic() < deadline:
        try:
            rows = int(ch.scalar(f"SELECT count() FROM {DATABASE}.requests"))
        except RuntimeError:
            rows = 0
        if rows >= want:
            break
        time.sleep(1.0)
    return rows


def sim_totals(sim_url: str) -> tuple[int, Counter[str]]:
    """How many requests /_sim/requests holds, and the sum of their usage."""
    with httpx2.Client(timeout=60.0, trust_env=False) as http:
        recorded = http.get(f"{sim_url}/_sim/requests").json()
    totals: Counter[str] = Counter()
    for req in recorded:
        for kind, value in (req.get("usage") or {}).items():
            totals[kind] += int(value)
    return len(recorded), totals


def checks(args: argparse.Namespace, tally: Tally, samples: list[dict], inst: Instance, ch: ClickHouse, sim_url: str,
           warmup_s: float) -> list[tuple[str, bool, str]]:
    results = []
    ok, text = rss_check(samples, warmup_s, args.rss_tolerance)
    results.append(("RSS flat within {:.0%}".format(args.rss_tolerance), ok, text))

    errors = sum(tally.errors.values())
    detail = ", ".join(f"{k}: {v} (e.g. {tally.examples[k]!r})" for k, v in tally.errors.items()) or "none"
    results.append(("zero client errors", errors == 0, f"{tally.started} requests, {tally.completed} complete; errors: {detail}"))

    metrics = Metrics(inst.tm.admin).scrape()
    on_metrics = {t: int(sum(v for (n, labels), v in metrics.items() if n == "tailmeter_tokens_total" and ("type", t) in labels))
                  for t in TOKEN_TYPES}
    sim = {t: tally.tokens[t] for t in TOKEN_TYPES}
    missing = int(sum(v for (n, _), v in metrics.items() if n == "tailmeter_usage_missing_total"))
    text = f"/metrics {on_metrics}; x-sim-usage {sim}; tailmeter_usage_missing_total {missing}"
    ok = on_metrics == sim
    recorded, totals = sim_totals(sim_url)
    if recorded == tally.started:
        ok = ok and {t: totals[t] for t in TOKEN_TYPES} == sim
        text += f"; /_sim/requests ({recorded}) agrees" if ok else f"; /_sim/requests {dict(totals)}"
    results.append(("tokens on /metrics == simulator's", ok, text))

    rows = wait_rows(ch, tally.started)
    final = int(ch.scalar(f"SELECT count() FROM {DATABASE}.requests FINAL"))
    ids = {r["request_id"] for r in ch.rows(f"SELECT DISTINCT request_id FROM {DATABASE}.requests")}
    ok = rows == final == len(ids) == tally.started and ids == tally.request_ids
    text = (f"rows {rows}, FINAL {final}, distinct ids {len(ids)}; requests {tally.started} "
            f"(ids the clients got: {len(tally.request_ids)}, not in ClickHouse: {len(tally.request_ids - ids)})")
    results.append(("rows in ClickHouse == requests", ok, text))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", type=Path, required=True, help="where tailmeter and provider-sim are")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (default 1000)")
    parser.add_argument("--duration", type=seconds, default=seconds("30m"), help="30m, 2h, 90s or seconds (default 30m)")
    parser.add_argument("--delay-ms", type=int, default=1000, help="the simulator's pause between events (default 1000)")
    parser.add_argument("--warmup", type=seconds, default=None, help="samples ignored by the RSS check (default: duration/5)")
    parser.add_argument("--ramp", type=seconds, default=None, help="time over which the streams open (default: min(60 s, duration/10))")
    parser.add_argument("--sample-every", type=seconds, default=5.0, help="RSS sampling period (default 5 s)")
    parser.add_argument("--rss-tolerance", type=float, default=0.10, help="allowed RSS change (default 0.10)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs, samples and ClickHouse data (default: a new /tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep ClickHouse's data directory at the end")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 4 * args.streams + 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2 * args.streams + 256:
        print(f"open-file limit {want} is too low for {args.streams} streams (raise `ulimit -Hn`)", file=sys.stderr)
        return 2
    for name in ("tailmeter", "provider-sim"):
        if not (args.bin_dir / name).is_file():
            print(f"{args.bin_dir / name} does not exist (build it, or set CARGO_TARGET_DIR)", file=sys.stderr)
            return 2
    server = find_server()
    if server is None:
        print("clickhouse-server is not installed (Debian's package; see .ci/run)", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tailmeter-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    warmup_s = args.warmup if args.warmup is not None else args.duration / 5
    ramp_s = args.ramp if args.ramp is not None else min(60.0, args.duration / 10)
    print(f"soak: {args.streams} streams for {args.duration:.0f} s, {args.delay_ms} ms between events, "
          f"binaries {args.bin_dir}, workdir {workdir}", flush=True)

    ch = ClickHouse(server, workdir / "clickhouse")
    ch.start()
    sim_proc = inst = None
    try:
        keys = ("--synthesize",)
        sim_proc, port = start_sim(args.bin_dir / "provider-sim", REPO / "tests" / "fixtures",
                                   PROVIDER_ENV[cfg.OPENAI_KEY_ENV], PROVIDER_ENV[cfg.ANTHROPIC_KEY_ENV], workdir, keys)
        sim_url = f"http://127.0.0.1:{port}"
        (workdir / "tailmeter").mkdir(exist_ok=True)
        inst = launch(args.bin_dir / "tailmeter", workdir / "tailmeter", sim_url,
                      clickhouse={"url": ch.url, "database": DATABASE},
                      events={"dir": str(workdir / "tailmeter" / "events")}, log={"level": "warn"})
        pid = inst.tm.proc.popen.pid
        idle = proc_status(pid)
        print(f"tailmeter pid {pid} idle: rss {idle['rss_kib'] / 1024:.1f} MiB, fds {idle['fds']}, threads {idle['threads']}", flush=True)

        tally, samples = Tally(target=args.streams), []
        started = time.monotonic()

        async def soak() -> None:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(pid, args.sample_every, started, tally, samples, stop))
            streams = Streams(inst.tm.base_url, args.streams, args.delay_ms, ramp_s, tally)
            try:
                await asyncio.wait_for(streams.run(started + args.duration), args.duration + DRAIN_S)
            finally:
                stop.set()
                await sampler

        asyncio.run(soak())
        elapsed = time.monotonic() - started
        after = proc_status(pid)
        warmup_s = max(warmup_s, tally.all_open_at or 0.0)
        (workdir / "samples.json").write_text(json.dumps(samples))
        print(f"done after {elapsed:.0f} s: {tally.started} requests ({tally.started / elapsed:.1f}/s), "
              f"{tally.completed} complete; all {args.streams} streams open at "
              f"{'t=%.0f s' % tally.all_open_at if tally.all_open_at is not None else 'never'}; peak open "
              f"{max((s['open'] for s in samples), default=0)}", flush=True)
        print(f"tailmeter after: rss {after['rss_kib'] / 1024:.1f} MiB, fds {after['fds']} (idle {idle['fds']}), "
              f"threads {after['threads']} (idle {idle['threads']}); peak rss "
              f"{max(s['rss_kib'] for s in samples) / 1024:.1f} MiB, peak fds {max(s['fds'] for s in samples)}", flush=True)

        results = checks(args, tally, samples, inst, ch, sim_url, warmup_s)
        for name, ok, text in results:
            print(f"{'PASS' if ok else 'FAIL'} {name}: {text}", flush=True)
        summary = {"streams": args.streams, "duration_s": args.duration, "requests": tally.started,
                   "checks": [{"check": n, "ok": ok, "figures": t} for n, ok, t in results]}
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
        failed = [n for n, ok, _ in results if not ok]
        print(f"soak: {'FAILED: ' + ', '.join(failed) if failed else 'all checks passed'} (logs in {workdir})")
        return 1 if failed else 0
    finally:
        if inst is not None:
            inst.tm.proc.stop()
        if sim_proc is not None:
            sim_proc.stop()
        ch.stop()
        if not args.keep:
            shutil.rmtree(workdir / "clickhouse" / "data", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

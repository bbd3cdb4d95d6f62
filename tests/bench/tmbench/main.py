"""`python3 -m tmbench`: runs every setup through every workload and writes the results.

nginx, direct, Pingora alone, tailmeter and tailmeter with ClickHouse run side by side and are
measured in rounds (`--rounds`): in each round every setup runs each workload in turn, starting
with another setup each round, so a machine that slows down over the run slows them all alike;
the report gives each figure's median over the rounds and ratios taken within a round. First the
throughput rounds (nginx's median throughput sets each workload's fixed rates), then the
fixed-rate rounds, then time to first token. LiteLLM follows alone (one round, at fractions of
its own throughput); then, on fresh processes, the slow-stream memory test. Every run is
bounded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import bodies, load, procs, report, setups, slow

HERE = Path(__file__).resolve().parent.parent
ORDER = ["nginx", "direct", "pingora", "tailmeter", "tailmeter-ch", "litellm"]
MEMORY_SETUPS = ("nginx", "pingora", "tailmeter")
# LiteLLM completes few 200-event streams a second: its throughput runs last longer to count any.
LITELLM_STRETCH = 3


def parse() -> argparse.Namespace:
    target = Path(os.environ.get("CARGO_TARGET_DIR", HERE.parents[1] / "target"))
    p = argparse.ArgumentParser(prog="tests/bench/run", description=__doc__)
    p.add_argument("--bin-dir", type=Path, default=target / "release", help="where tailmeter is")
    p.add_argument("--upstream", type=Path, required=True, help="the bench-upstream binary")
    p.add_argument("--upstream-name", default="127.0.0.1",
                   help="the host the proxies are given for the upstream (`localhost`: resolved by name, "
                        "as a provider's is)")
    p.add_argument("--litellm", type=Path, help="the litellm CLI (absent: LiteLLM is skipped)")
    p.add_argument("--setups", default=",".join(ORDER), help="comma-separated, of " + ",".join(ORDER))
    p.add_argument("--workloads", default="a,b,c,d")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of load runs; in each, every setup but LiteLLM runs each workload in turn")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    p.add_argument("--rate-duration", type=float, default=5.0, help="seconds per fixed-rate run")
    p.add_argument("--light-fraction", type=float, default=0.1,
                   help="a second fixed-rate run at this fraction of nginx's throughput (0: none)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each throughput run")
    p.add_argument("--streams", type=int, default=2000, help="concurrent slow streams (0: skip)")
    p.add_argument("--ttft-samples", type=int, default=200)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="proxy threads/workers (tailmeter, nginx, LiteLLM) and upstream threads")
    p.add_argument("--label", default="", help="names this run in RESULTS.md and results.json")
    p.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md, results.json, results.png go")
    return p.parse_args()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rotated(group: list, shift: int) -> list:
    """`group` starting at its `shift`-th member: each round puts each setup at another place."""
    k = shift % len(group) if group else 0
    return group[k:] + group[:k]


def rate_of(maxima: dict, setup, fraction: float, w) -> float | None:
    """A fraction of nginx's median throughput on `w` (`maxima`: `report.index` of the throughput
    runs); LiteLLM, which only queues at nginx's rates, gets fractions of its own."""
    base = maxima.get(("litellm" if setup.name == "litellm" else "nginx", w.key))
    return None if base is None else max(1.0, base["rps"] * fraction)


class Group:
    """Setups measured together: all running, their runs interleaved round by round."""

    def __init__(self, members, ctx, args, workloads, results, upstream_pids, rounds: range, stretch: float = 1):
        # Rounds are numbered across groups: a round is a stretch of time, and the report pairs
        # two setups' runs only within the same round.
        self.members, self.ctx, self.args = members, ctx, args
        self.workloads, self.results, self.upstream_pids = workloads, results, upstream_pids
        self.rounds, self.stretch = rounds, stretch
        self.running: list = []

    def note(self, text: str) -> None:
        self.results["notes"].append(text.splitlines()[0])

    def attempt(self, setup, what: str, measure, passing: tuple = ()):
        """One measurement. An error of a `passing` kind is noted and the setup goes on; any other
        is noted and the setup is measured no further."""
        try:
            return measure()
        except passing as error:
            self.note(f"{setup.name} {what}: {error}")
            return None
        except Exception as error:  # noqa: BLE001 - one setup failing must not lose the others
            traceback.print_exc()
            self.note(f"{setup.name} {what} failed: {error}")
            if setup in self.running:
                self.running.remove(setup)
            return None

    def start(self) -> None:
        for setup in self.members:
            print(f"{setup.name}: {setup.title}", flush=True)
            try:
                setup.start(self.ctx)
                self.running.append(setup)
            except Exception as error:  # noqa: BLE001
                traceback.print_exc()
                self.note(f"{setup.name} failed to start: {error}")
                setup.stop()

    def throughput(self) -> None:
        requests = self.ctx.work / "requests"
        for r in self.rounds:
            for w in self.workloads:
                for setup in rotated(list(self.running), r):
                    run = self.attempt(setup, f"{w.key} throughput", lambda: load.measure_max(
                        setup, w, requests, self.args.duration * self.stretch, self.upstream_pids,
                        self.args.warmup, r))
                    if run:
                        self.results["runs"].append(run.to_json())
                        print(f"  {setup.name:13} {w.key} max   {run.rps:10.0f} req/s  p99 {run.p99_ms:8.2f} ms  "
                              f"cpu {run.cpu_s:6.2f} s  errors {run.errors}  (round {r + 1})", flush=True)

    def fixed_rates(self) -> None:
        """Latency runs at the rates `rate_of` gives, from this group's or an earlier group's
        throughput runs (LiteLLM's own, nginx's from the group before)."""
        requests = self.ctx.work / "requests"
        kinds = {"rate": 0.5, "light": self.args.light_fraction}
        maxima = report.index(self.results["runs"], "max")  # the throughput rounds are done
        for r in self.rounds:
            for kind, fraction in kinds.items():
                if fraction <= 0:
                    continue
                for w in self.workloads:
                    for setup in rotated(list(self.running), r):
                        rate = rate_of(maxima, setup, fraction, w)
                        if rate is None:
                            continue
                        run = self.attempt(setup, f"{w.key} fixed rate (round {r + 1})", lambda: load.measure_rate(
                            setup, w, requests, self.args.rate_duration, self.upstream_pids, rate, kind, r),
                            passing=(RuntimeError,))  # oha failing at one rate: the others still run
                        if not run:
                            continue
                        self.results["runs"].append(run.to_json())
                        print(f"  {setup.name:13} {w.key} {kind:5} {run.rps:10.0f} req/s  p50 {run.p50_ms:7.3f}  "
                              f"p99 {run.p99_ms:7.3f}  p99.9 {run.p999_ms:7.3f} ms  errors {run.errors}  "
                              f"(round {r + 1})", flush=True)

    def first_tokens(self, samples: int) -> None:
        for setup in list(self.running):
            for w in self.workloads:
                if not w.stream or samples <= 0 or setup not in self.running:
                    continue
                t = self.attempt(setup, f"{w.key} time to first token", lambda: slow.ttft(setup, w, samples),
                                 passing=(OSError,))
                if not t:
                    continue
                self.results["ttft"].append(t.to_json())
                print(f"  {setup.name:13} {w.key} ttft  p50 {t.p50_ms:.3f} ms  p99 {t.p99_ms:.3f} ms", flush=True)

    def finish(self) -> None:
        for setup in self.running:
            if isinstance(setup, setups.TailmeterClickHouse):
                time.sleep(3)  # the sink's last batch
                self.note(f"ClickHouse rows written during the run: {setup.rows()}")
            self.results["descriptions"][setup.name] = setup.describe()

    def stop(self) -> None:
        for setup in self.members:
            setup.stop()

    def run(self) -> None:
        self.start()
        try:
            self.throughput()
            self.fixed_rates()
            litellm = any(s.name == "litellm" for s in self.running)
            self.first_tokens(max(10, self.args.ttft_samples // 10) if litellm else self.args.ttft_samples)
            self.finish()
        finally:
            self.stop()


def run_memory(setup, ctx, args, results) -> None:
    setup.start(ctx)
    try:
        m = slow.memory_per_stream(setup, bodies.BY_KEY["b"], args.streams)
        results["memory"].append(m.to_json())
        print(f"  {setup.name:13} {m.opened}/{m.streams} streams: idle {m.idle_rss_kib / 1024:.1f} MiB, "
              f"open {m.open_rss_kib / 1024:.1f} MiB, {m.per_stream_kib:.1f} KiB per stream", flush=True)
    finally:
        setup.stop()


def main() -> int:
    args = parse()
    raise_fd_limit()
    names = [n for n in ORDER if n in args.setups.split(",")]
    if "litellm" in names and not (args.litellm and args.litellm.exists()):
        print("LiteLLM CLI not given or missing: skipping it")
        names.remove("litellm")
    if "tailmeter-ch" in names and not setups.TailmeterClickHouse.available():
        print("clickhouse-server or the ClickHouse harness is missing: skipping tailmeter-ch")
        names.remove("tailmeter-ch")
    workloads = [bodies.BY_KEY[k] for k in args.workloads.split(",")]
    oha = load.oha_binary()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "label": args.label or "unlabelled", "machine": report.machine(), "load_before": load_average(),
        "duration": args.duration, "rate_duration": args.rate_duration, "rounds": args.rounds,
        "streams": args.streams,
        "oha": subprocess.run([oha, "--version"], capture_output=True, text=True).stdout.strip() if oha else None,
        "setups": names, "workloads": [w.key for w in workloads], "descriptions": {},
        "runs": [], "ttft": [], "memory": [], "notes": [],
    }
    with tempfile.TemporaryDirectory(prefix="tailmeter-bench-") as tmp:
        work = Path(tmp)
        answers, _ = bodies.write_all(work)
        upstream = procs.Child("bench-upstream", [str(args.upstream), "--listen", "127.0.0.1:0", "--bodies",
                                                  str(answers), "--drip-ms", "100", "--threads",
                                                  str(args.threads)], work / "upstream.log")
        try:
            port = upstream.first_line("listening on ").split()[-1].rsplit(":", 1)[1]
            address = f"{args.upstream_name}:{port}"
            ctx = setups.Context(work, address, args.bin_dir / "tailmeter", args.litellm, args.threads)
            upstream_pids = procs.tree(upstream.pid)
            together = setups.build([n for n in names if n != "litellm"])
            Group(together, ctx, args, workloads, results, upstream_pids, range(args.rounds)).run()
            if "litellm" in names:  # one round of its own, after the others'
                Group(setups.build(["litellm"]), ctx, args, workloads, results, upstream_pids,
                      range(args.rounds, args.rounds + 1), LITELLM_STRETCH).run()
            if args.streams > 0:
                print(f"memory with {args.streams} slow streams", flush=True)
                for setup in setups.build([n for n in names if n in MEMORY_SETUPS]):
                    try:
                        run_memory(setup, ctx, args, results)
                    except Exception as error:  # noqa: BLE001
                        traceback.print_exc()
                        results["notes"].append(f"{setup.name} memory test failed: {error}".splitlines()[0])
        finally:
            upstream.stop()
    results["load_after"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    report.write(results, args.out)
    print()
    print("\n".join(report.main_table(results)))
    print()
    print("\n".join(report.ttft_table(results)))
    print()
    print("\n".join(report.memory_table(results)))
    print()
    print("\n".join(report.targets(results)))
    print(f"\nwritten: {args.out / 'RESULTS.md'}, {args.out / 'results.png'}, {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

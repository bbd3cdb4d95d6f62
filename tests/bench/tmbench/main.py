"""`python3 -m tmbench`: runs every setup through every workload and writes the results.

Order: nginx first (its throughput sets each workload's fixed rate), then direct, Pingora alone,
tailmeter, tailmeter with ClickHouse and LiteLLM. For each setup: throughput runs, fixed-rate
runs, time to first token; then, on a fresh process, the slow-stream memory test. Every run is
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
    p.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    p.add_argument("--rate-duration", type=float, default=10.0, help="seconds per fixed-rate run")
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


def run_setup(setup, ctx, args, workloads, results, rates, upstream_pids) -> None:
    is_litellm = setup.name == "litellm"
    seconds = args.duration * (LITELLM_STRETCH if is_litellm else 1)
    rate_seconds = args.rate_duration
    setup.start(ctx)
    try:
        own_max = {}
        for w in workloads:
            run = load.measure_max(setup, w, ctx.work / "requests", seconds, upstream_pids, args.warmup)
            own_max[w.key] = run.rps
            results["runs"].append(run.to_json())
            print(f"  {setup.name:13} {w.key} max   {run.rps:10.0f} req/s  p99 {run.p99_ms:8.2f} ms  "
                  f"cpu {run.cpu_s:6.2f} s  errors {run.errors}", flush=True)
        fractions = {"rate": 0.5, "light": args.light_fraction}
        if setup.name == "nginx":
            rates.update({(kind, k): v * f for kind, f in fractions.items() for k, v in own_max.items()})
        for kind, fraction in fractions.items():
            for w in workloads:
                rate = rates.get((kind, w.key))
                if rate is None or fraction <= 0:
                    continue
                if is_litellm:  # at nginx's rates it only queues: take fractions of its own ceiling
                    rate = max(1.0, own_max[w.key] * fraction)
                try:
                    run = load.measure_rate(setup, w, ctx.work / "requests", rate_seconds, upstream_pids, rate,
                                            kind)
                except RuntimeError as error:
                    results["notes"].append(f"{setup.name} {w.key} fixed rate: {error}")
                    continue
                results["runs"].append(run.to_json())
                print(f"  {setup.name:13} {w.key} {kind:5} {run.rps:10.0f} req/s  p50 {run.p50_ms:7.3f}  "
                      f"p99 {run.p99_ms:7.3f}  p99.9 {run.p999_ms:7.3f} ms  errors {run.errors}", flush=True)
        samples = max(10, args.ttft_samples // 10) if is_litellm else args.ttft_samples
        for w in workloads:
            if not w.stream or samples <= 0:
                continue
            try:
                t = slow.ttft(setup, w, samples)
            except OSError as error:
                results["notes"].append(f"{setup.name} {w.key} time to first token: {error}")
                continue
            results["ttft"].append(t.to_json())
            print(f"  {setup.name:13} {w.key} ttft  p50 {t.p50_ms:.3f} ms  p99 {t.p99_ms:.3f} ms", flush=True)
        if isinstance(setup, setups.TailmeterClickHouse):
            time.sleep(3)  # the sink's last batch
            results["notes"].append(f"ClickHouse rows written during the run: {setup.rows()}")
        results["descriptions"][setup.name] = setup.describe()
    finally:
        setup.stop()


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
        "duration": args.duration, "rate_duration": args.rate_duration, "streams": args.streams,
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
            rates: dict[tuple[str, str], float] = {}
            for setup in setups.build(names):
                print(f"{setup.name}: {setup.title}", flush=True)
                try:
                    run_setup(setup, ctx, args, workloads, results, rates, procs.tree(upstream.pid))
                except Exception as error:  # noqa: BLE001 - one setup failing must not lose the others
                    traceback.print_exc()
                    results["notes"].append(f"{setup.name} failed: {error}".splitlines()[0])
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

"""`python3 -m tmbench.profile`: tailmeter under one workload with `perf record` attached, then
the hottest symbols. The same upstream, bodies and tailmeter configuration as the benchmark.

    cd tests/bench && python3 -m tmbench.profile --bin-dir $CARGO_TARGET_DIR/release \\
        --upstream ~/.cache/tailmeter-bench/target/release/bench-upstream --workload b
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from . import bodies, load, procs, setups


def main() -> int:
    p = argparse.ArgumentParser(prog="python3 -m tmbench.profile", description=__doc__)
    p.add_argument("--bin-dir", type=Path, required=True)
    p.add_argument("--upstream", type=Path, required=True)
    p.add_argument("--workload", default="b")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=Path("/tmp/tailmeter-perf.data"))
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    workload = bodies.BY_KEY[args.workload]
    with tempfile.TemporaryDirectory(prefix="tailmeter-profile-") as tmp:
        work = Path(tmp)
        answers, requests = bodies.write_all(work)
        with setups.tailmeter_on_upstream(args.bin_dir, args.upstream, work, answers, args.threads) as proxy:
            load.wrk(proxy.url, workload, requests, 2)
            with procs.perf_recording(proxy.child.pid, args.out, ["-F", "299", "--call-graph", "dwarf,8192"]):
                result = load.wrk(proxy.url, workload, requests, args.seconds)
            print(f"{result['requests'] / (result['duration_us'] / 1e6):.0f} req/s under perf")
    report = subprocess.run(["perf", "report", "-i", str(args.out), "--no-children", "--percent-limit", "0.5",
                             "--sort", "dso,symbol", "--stdio", "-g", "none"],
                            capture_output=True, text=True, timeout=600)
    lines = [line for line in report.stdout.splitlines() if line.strip() and not line.startswith("#")]
    print("\n".join(lines[: args.top]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

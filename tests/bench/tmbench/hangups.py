"""`python3 -m tmbench.hangups`: what clients hanging up on long prompts cost everyone else.

Workload a runs through tailmeter at a fixed rate (oha, latency corrected) while other clients
send 1 MB OpenAI streaming prompts and hang up after the first event, `--hangups` a second: each
such request's input is estimated from its prompt with OpenAI's tokenizer. Each build given with
`--bin-dir` is measured in turn, `--rounds` times, with and without the hang-ups; the figures are
a's p50, p99, p99.9 and slowest request. Run from tests/bench, after `tests/bench/run` built the
binaries.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from . import bodies, load, setups

# About 960 kB of prose.
PROSE = ("The quick brown fox jumps over the lazy dog while the committee reviews the "
         "quarterly figures, line by line, before lunch. ") * 8000


def long_prompt(host: str) -> bytes:
    """The raw HTTP request of a 1 MB prompt for the dripping model."""
    body = json.dumps({"model": bodies.OPENAI_MODEL + bodies.SLOW, "stream": True,
                       "messages": [{"role": "user", "content": PROSE}]}, separators=(",", ":")).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {bodies.CLIENT_KEY}\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


def hang_up_repeatedly(port: int, request: bytes, per_second: float, stop: threading.Event,
                       counts: list[int]) -> None:
    """Sends `request` and hangs up after the first bytes of the answer, `per_second` times a
    second until `stop`; counts [done, failed]."""
    due = time.monotonic()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(request)
                conn.recv(4096)
                time.sleep(0.05)
            counts[0] += 1
        except OSError:
            counts[1] += 1
        due += 1 / per_second
        time.sleep(max(0.0, due - time.monotonic()))


def measure(bin_dir: Path, args: argparse.Namespace, work: Path, answers: Path, requests: Path) -> dict:
    """Every round of one build: a's latency percentiles (ms) with and without the hang-ups."""
    figures: dict[str, list[dict]] = {"quiet": [], "hang-ups": []}
    with setups.tailmeter_on_upstream(bin_dir, args.upstream, work, answers, args.threads,
                                      upstream_threads=2) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        load.wrk(proxy.url, bodies.BY_KEY["a"], requests, 2, 64)
        for _ in range(args.rounds):
            for kind, per_second in (("quiet", 0.0), ("hang-ups", args.hangups)):
                load.settle([proxy.child.pid])
                stop, counts = threading.Event(), [0, 0]
                side = threading.Thread(target=hang_up_repeatedly,
                                        args=(port, long_prompt(f"127.0.0.1:{port}"), per_second, stop, counts))
                if per_second:
                    side.start()
                try:
                    out = load.oha(proxy.url, bodies.BY_KEY["a"], requests, args.seconds, args.rate)
                finally:
                    stop.set()
                    if per_second:
                        side.join()
                pct = out["latencyPercentiles"]
                figures[kind].append({"p50": pct["p50"] * 1e3, "p99": pct["p99"] * 1e3,
                                      "p99.9": pct["p99.9"] * 1e3, "slowest": out["summary"]["slowest"] * 1e3,
                                      "hung up": counts[0], "failed": counts[1]})
                print(f"{bin_dir} {kind}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in figures[kind][-1].items()), flush=True)
    return figures


def main() -> int:
    p = argparse.ArgumentParser(prog="python3 -m tmbench.hangups", description=__doc__)
    p.add_argument("--bin-dir", type=Path, action="append", required=True, help="a build (repeatable)")
    p.add_argument("--upstream", type=Path, required=True, help="the bench-upstream binary")
    p.add_argument("--rate", type=float, default=2000, help="workload a's requests per second")
    p.add_argument("--hangups", type=float, default=10, help="long prompts hung up per second")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tmbench-hangups-") as tmp:
        answers, requests = bodies.write_all(Path(tmp))
        for n, bin_dir in enumerate(args.bin_dir):
            work = Path(tmp) / f"build{n}"
            work.mkdir()
            results[str(bin_dir)] = measure(bin_dir, args, work, answers, requests)
    print(f"\nmedians over {args.rounds} rounds, a at {args.rate:.0f}/s, ms:")
    print("| build | long prompts hung up per second | p50 | p99 | p99.9 | slowest |")
    print("|---|--:|--:|--:|--:|--:|")
    for build, figures in results.items():
        for kind, runs in figures.items():
            rate = args.hangups if kind == "hang-ups" else 0
            cells = " | ".join(f"{statistics.median(r[k] for r in runs):.2f}" for k in ("p50", "p99", "p99.9", "slowest"))
            print(f"| {build} | {rate:g} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

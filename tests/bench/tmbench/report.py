"""The benchmark's figures as tables (stdout and RESULTS.md), a JSON dump and a PNG plot.

RESULTS.md is rewritten above the line HISTORY_MARK; what follows it (the optimization log,
written by hand with each change's before/after figures) is kept across runs.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

from .bodies import BY_KEY

HISTORY_MARK = "<!-- history: everything below this line is kept across runs -->"
TARGET_RATIO = 0.9
TARGET_P99_MS = 1.0
TARGET_TTFT_MS = 1.0
TARGET_STREAM_KIB = 64
RATE_TITLES = {"rate": "half of nginx's throughput", "light": "a tenth of nginx's throughput"}


def machine() -> dict:
    def run(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    cpu = next((line.split(":", 1)[1].strip() for line in run(["lscpu"]).splitlines()
                if line.startswith("Model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory": run(["sh", "-c", "free -h | awk '/Mem:/ {print $2}'"]),
            "nginx": run(["nginx", "-v"]).replace("nginx version: ", ""),
            "wrk": run(["wrk", "-v"]).splitlines()[0] if run(["wrk", "-v"]) else "?"}


def per_k(run: dict, field: str) -> float | None:
    """CPU seconds of `field` per 1,000 requests of one run."""
    return run[field] / run["requests"] * 1000 if run["requests"] else None


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def index(runs: list[dict], kind: str) -> dict[tuple[str, str], dict]:
    """Each (setup, workload)'s runs of `kind` folded into one: the median of every figure over the
    rounds (peak RSS: the largest, errors: the sum), the rounds themselves kept under `rounds`."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        if r["kind"] == kind:
            groups.setdefault((r["setup"], r["workload"]), []).append(r)
    folded = {}
    for key, group in groups.items():
        fields = ("requests", "seconds", "rps", "p50_ms", "p99_ms", "p999_ms")
        one = dict(group[0]) | {f: median([r[f] for r in group]) for f in fields}
        one |= {"errors": sum(r["errors"] for r in group), "peak_rss_kib": max(r["peak_rss_kib"] for r in group),
                "cpu_per_k": median([per_k(r, "cpu_s") for r in group]),
                "upstream_cpu_per_k": median([per_k(r, "upstream_cpu_s") for r in group]),
                "rounds": {r.get("round", 0): r for r in group}}
        folded[key] = one
    return folded


def paired(run: dict | None, base: dict | None, measure) -> tuple[float | None, float | None, float | None]:
    """`measure(run, base)` within each round both ran (median, lowest, highest); for setups that
    shared no round (LiteLLM), of their medians."""
    if not run or not base:
        return None, None, None
    common = sorted(set(run["rounds"]) & set(base["rounds"]))
    values = [measure(run["rounds"][k], base["rounds"][k]) for k in common] or [measure(run, base)]
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def rps_ratio(run: dict, base: dict) -> float | None:
    return run["rps"] / base["rps"] if base["rps"] else None


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def spread(values: tuple[float | None, float | None, float | None], digits: int = 2) -> str:
    """A paired figure: its median, and its range over the rounds when they differ."""
    mid, low, high = values
    if mid is None or low is None or high is None or round(low, digits) == round(high, digits):
        return fmt(mid, digits)
    return f"{fmt(mid, digits)} ({fmt(low, digits)}–{fmt(high, digits)})"


def throughput_table(results: dict) -> list[str]:
    best = index(results["runs"], "max")
    lines = ["| workload | setup | req/s at c=64 | × nginx | × pingora | × direct | p50 ms | p99 ms "
             "| CPU s / 1k req | upstream CPU s / 1k req | peak RSS MiB | errors |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for key in results["workloads"]:
        nginx, direct, pingora = (best.get((name, key)) for name in ("nginx", "direct", "pingora"))
        for name in results["setups"]:
            m = best.get((name, key))
            if not m:
                continue
            proxy = name != "direct"
            lines.append(
                f"| {key} {BY_KEY[key].title} | {name} | {fmt(m['rps'], 0)} "
                f"| {spread(paired(m, nginx, rps_ratio))} | {spread(paired(m, pingora, rps_ratio))} "
                f"| {spread(paired(m, direct, rps_ratio))} | {fmt(m['p50_ms'])} | {fmt(m['p99_ms'])} "
                f"| {fmt(m['cpu_per_k'], 3) if proxy else '—'} | {fmt(m['upstream_cpu_per_k'], 3)} "
                f"| {fmt(m['peak_rss_kib'] / 1024, 1) if proxy else '—'} | {m['errors']} |")
    return lines


def added(percentile: str):
    """A setup's latency percentile minus direct's, when both ran at the same rate."""
    return lambda run, base: run[percentile] - base[percentile] if run["rate"] == base["rate"] else None


def latency_table(results: dict, kind: str) -> list[str]:
    rate = index(results["runs"], kind)
    lines = ["| workload | setup | target req/s | served req/s | p50 ms | p99 ms | p99.9 ms | added p50 "
             "| added p99 | added p99.9 | errors |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for key in results["workloads"]:
        base = rate.get(("direct", key))
        for name in results["setups"]:
            r = rate.get((name, key))
            if not r:
                continue
            extra = [spread(paired(r, base, added(p)), 3) for p in ("p50_ms", "p99_ms", "p999_ms")]
            served = fmt(r["rps"], 0) + (" (overloaded)" if r["rps"] < 0.95 * r["rate"] else "")
            lines.append(f"| {key} {BY_KEY[key].title} | {name} | {fmt(r['rate'], 0)} | {served} "
                         f"| {fmt(r['p50_ms'], 3)} | {fmt(r['p99_ms'], 3)} | {fmt(r['p999_ms'], 3)} "
                         f"| {' | '.join(extra)} | {r['errors']} |")
    return lines


def main_table(results: dict) -> list[str]:
    """Everything the load runs measured, as printed at the end of a run."""
    out = throughput_table(results)
    for kind in ("rate", "light"):
        if any(r["kind"] == kind for r in results["runs"]):
            out += ["", f"latency at {RATE_TITLES[kind]}:"] + latency_table(results, kind)
    return out


def memory_table(results: dict) -> list[str]:
    lines = ["| setup | streams open | idle RSS MiB | RSS with streams open MiB | RSS per stream KiB "
             "| seconds to open |", "|---|--:|--:|--:|--:|--:|"]
    for m in results["memory"]:
        lines.append(f"| {m['setup']} | {m['opened']} / {m['streams']} | {fmt(m['idle_rss_kib'] / 1024, 1)} "
                     f"| {fmt(m['open_rss_kib'] / 1024, 1)} | {fmt(m['per_stream_kib'], 1)} "
                     f"| {fmt(m['seconds_to_open'], 1)} |")
    return lines


def ttft_table(results: dict) -> list[str]:
    direct = {t["workload"]: t for t in results["ttft"] if t["setup"] == "direct"}
    lines = ["| workload | setup | samples | p50 ms | p99 ms | added p50 | added p99 |",
             "|---|---|--:|--:|--:|--:|--:|"]
    for t in results["ttft"]:
        d = direct.get(t["workload"])
        lines.append(f"| {t['workload']} | {t['setup']} | {t['samples']} | {fmt(t['p50_ms'], 3)} "
                     f"| {fmt(t['p99_ms'], 3)} | {fmt(d and t['p50_ms'] - d['p50_ms'], 3)} "
                     f"| {fmt(d and t['p99_ms'] - d['p99_ms'], 3)} |")
    return lines


def framework(best: dict, key: str, subject: str) -> str:
    """What Pingora alone reached on the same workload: the ceiling tailmeter's metering sits under."""
    alone, metered, nginx = best.get(("pingora", key)), best.get((subject, key)), best.get(("nginx", key))
    if not alone or not metered:
        return ""
    return (f" (Pingora alone: {spread(paired(alone, nginx, rps_ratio))}× nginx; {subject} "
            f"{spread(paired(metered, alone, rps_ratio))}× Pingora alone)")


def targets(results: dict, subject: str = "tailmeter") -> list[str]:
    """Each target of the issue against this run: the median over the rounds decides, the range shows."""
    best = index(results["runs"], "max")
    out = []
    for key in ("a", "b", "c"):
        ratio = paired(best.get((subject, key)), best.get(("nginx", key)), rps_ratio)
        if ratio[0] is not None:
            out.append(f"- throughput ({key}) ≥ {TARGET_RATIO}× nginx: {spread(ratio)}× — "
                       f"{'met' if ratio[0] >= TARGET_RATIO else 'MISSED'}{framework(best, key, subject)}")
    for kind in ("rate", "light"):
        rate = index(results["runs"], kind)
        for key in results["workloads"]:
            r = rate.get((subject, key))
            extra = paired(r, rate.get(("direct", key)), added("p99_ms"))
            if extra[0] is not None:
                out.append(f"- p99 added latency ({key}) < {TARGET_P99_MS} ms at {r['rate']:.0f}/s "
                           f"({RATE_TITLES[kind]}): {spread(extra, 3)} ms — "
                           f"{'met' if extra[0] < TARGET_P99_MS else 'MISSED'}")
    direct = {t["workload"]: t for t in results["ttft"] if t["setup"] == "direct"}
    for t in results["ttft"]:
        d = direct.get(t["workload"])
        if t["setup"] == subject and d:
            extra = t["p50_ms"] - d["p50_ms"]
            out.append(f"- time to first token ({t['workload']}) within {TARGET_TTFT_MS} ms: +{extra:.3f} ms "
                       f"(p50) — {'met' if extra < TARGET_TTFT_MS else 'MISSED'}")
    for m in results["memory"]:
        if m["setup"] == subject:
            out.append(f"- RSS per open stream < {TARGET_STREAM_KIB} KiB at {m['streams']}: "
                       f"{m['per_stream_kib']:.1f} KiB — {'met' if m['per_stream_kib'] < TARGET_STREAM_KIB else 'MISSED'}")
    return out


def render(results: dict) -> str:
    info = results["machine"]
    lines = [
        "# tailmeter benchmark results",
        "",
        f"Written by `tests/bench/run` on {results['date']} (label: {results['label']}).",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, Linux {info['kernel']}; "
        f"load average before the run {results['load_before']}, after {results['load_after']}. "
        "Everything (load generator, upstream, proxy) shares these cores: read the ratios and the "
        "CPU seconds per 1,000 requests, which depend less on the machine than the raw rates.",
        "",
        f"Tools: wrk ({info['wrk']}) for throughput at 64 connections, {results['duration']} s per run; "
        f"oha ({results.get('oha', '?')}) at a fixed rate (half of nginx's throughput for that workload; "
        "LiteLLM at half its own) for latency, with latency correction, "
        f"{results['rate_duration']} s per run. nginx {info['nginx']}.",
        "",
        f"Rounds: {results.get('rounds', 1)}. Every setup but LiteLLM runs all along, and each round runs "
        "each workload through each of them in turn, starting with another setup each round, so a machine "
        "that slows down during the run slows them all alike. Each figure is the median over the rounds; "
        "ratios and added latencies are taken within each round, their median first and their range over "
        "the rounds in brackets. LiteLLM runs alone after the others, one round.",
        "",
        "Setups:",
        "",
    ]
    lines += [f"- **{name}**: {desc}" for name, desc in results["descriptions"].items()]
    lines += ["", "Upstream: `bench-upstream` (tests/bench/upstream), answers loaded at start; its ceiling is the "
              "`direct` row.", "", "## Throughput and latency", ""]
    lines += throughput_table(results)
    lines += ["", "CPU is user + system time of the proxy (all its processes) and of the upstream, per 1,000 "
              "requests of the run.", ""]
    for kind in ("rate", "light"):
        if any(r["kind"] == kind for r in results["runs"]):
            lines += [f"### Latency at {RATE_TITLES[kind]}", ""] + latency_table(results, kind) + [""]
    lines += ["Added latency = the setup's percentile minus direct's at the same rate; `overloaded` marks a "
              "setup that could not serve the rate (its latencies are then queueing).", "",
              "## Time to first token", "",
              "Sequential requests on fresh connections to a stream whose first event comes at once and the "
              "next 100 ms later: time from sending the request to the first `data:` byte.", ""]
    lines += ttft_table(results)
    lines += ["", f"## Memory under {results['streams']} concurrent slow streams", "",
              "Each stream gets one event every 100 ms (workload b's stream); a fresh proxy process, RSS read "
              "from /proc (all its processes) before and while the streams are open.", ""]
    lines += memory_table(results)
    lines += ["", "## Targets (tailmeter, embedded sink)", ""] + targets(results)
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    lines += ["", "![throughput and p99 per setup](results.png)", ""]
    return "\n".join(lines)


def write(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = render(results)
    target = out / "RESULTS.md"
    history = ""
    if target.exists() and HISTORY_MARK in target.read_text():
        history = target.read_text().split(HISTORY_MARK, 1)[1]
    target.write_text(text + "\n" + HISTORY_MARK + (history or "\n\n## Optimization log\n"))
    plot(results, out / "results.png")


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("matplotlib is not installed (pip install -r tests/bench/requirements.txt): no plot")
        return
    best, rate, light = (index(results["runs"], k) for k in ("max", "rate", "light"))
    setups, keys = results["setups"], results["workloads"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    width = 0.8 / max(1, len(setups))
    for panel, (table, field, title) in zip(axes, [
            (best, "rps", "throughput at 64 connections (req/s, log)"),
            (rate, "p99_ms", f"p99 at {RATE_TITLES['rate']} (ms, log)"),
            (light, "p99_ms", f"p99 at {RATE_TITLES['light']} (ms, log)")]):
        positive = False
        for i, name in enumerate(setups):
            values = [table[(name, k)][field] if (name, k) in table else float("nan") for k in keys]
            rounds = [[r[field] for r in table[(name, k)]["rounds"].values()] if (name, k) in table else [v]
                      for k, v in zip(keys, values)]
            low = [v - min(rs) for v, rs in zip(values, rounds)]
            high = [max(rs) - v for v, rs in zip(values, rounds)]
            positive |= any(v > 0 for v in values)
            panel.bar([x + i * width for x in range(len(keys))], values, width, label=name,
                      yerr=[low, high], capsize=2, error_kw={"elinewidth": 0.8})
        panel.set_xticks([x + width * (len(setups) - 1) / 2 for x in range(len(keys))])
        panel.set_xticklabels([f"{k}\n" + BY_KEY[k].title.replace(", ", "\n") for k in keys], fontsize=8)
        if positive:
            panel.set_yscale("log")
        panel.set_title(title, fontsize=10)
        panel.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"tailmeter benchmark, {results['date']} ({results['machine']['cpu']}, "
                 f"{results['machine']['cores']} cores): bars the median of {results.get('rounds', 1)} "
                 "rounds, whiskers their range", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

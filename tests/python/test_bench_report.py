"""The benchmark's arithmetic (tests/bench/tmbench/report.py): rounds folded into medians, ratios
and added latencies taken within a round, targets decided by the median. No load is run here:
the published figures are only as good as this folding, so it is checked on made-up runs.
"""

from __future__ import annotations

import sys

import pytest

from harness.procs import REPO

sys.path.insert(0, str(REPO / "tests" / "bench"))
from tmbench import report  # noqa: E402


def run(setup: str, rps: float, round_: int, kind: str = "max", p99: float = 10.0, rate: float | None = None,
        key: str = "a") -> dict:
    return {"setup": setup, "workload": key, "kind": kind, "requests": int(rps * 5), "seconds": 5.0, "rps": rps,
            "p50_ms": p99 / 2, "p99_ms": p99, "p999_ms": p99 * 2, "errors": round_, "cpu_s": rps / 1000,
            "upstream_cpu_s": 0.0, "peak_rss_kib": 1024 * (round_ + 1), "rate": rate, "round": round_}


def test_runs_fold_into_medians_with_their_rounds_kept() -> None:
    runs = [run("tailmeter", rps, r) for r, rps in enumerate([900.0, 1200.0, 1000.0])]
    folded = report.index(runs, "max")[("tailmeter", "a")]
    assert folded["rps"] == 1000.0
    assert folded["errors"] == 0 + 1 + 2
    assert folded["peak_rss_kib"] == 3 * 1024
    assert folded["cpu_per_k"] == pytest.approx(0.2)
    assert sorted(folded["rounds"]) == [0, 1, 2]


def test_ratios_are_taken_within_each_round_not_between_medians() -> None:
    # The machine slows down in round 1: both setups lose half. Within each round tailmeter is at
    # 0.5× nginx; the ratio of the medians (500 / 2000 = 0.25) would blame tailmeter for the machine.
    nginx = [run("nginx", 2000.0, 0), run("nginx", 1000.0, 1), run("nginx", 2000.0, 2)]
    ours = [run("tailmeter", 1000.0, 0), run("tailmeter", 500.0, 1), run("tailmeter", 400.0, 2)]
    best = report.index(nginx + ours, "max")
    mid, low, high = report.paired(best[("tailmeter", "a")], best[("nginx", "a")], report.rps_ratio)
    assert (mid, low, high) == (0.5, 0.2, 0.5)
    assert report.spread((mid, low, high)) == "0.50 (0.20–0.50)"
    assert report.spread((0.5, 0.5, 0.5)) == "0.50"


def test_a_setup_of_its_own_round_is_compared_by_its_median() -> None:
    # LiteLLM runs alone after the three shared rounds: the driver numbers its round 3. Were it
    # numbered 0 it would be paired with nginx's first round only (1000 here), not its median.
    nginx = [run("nginx", rps, r) for r, rps in enumerate([1000.0, 2000.0, 2000.0])]
    best = report.index(nginx + [run("litellm", 20.0, 3)], "max")
    assert report.paired(best[("litellm", "a")], best[("nginx", "a")], report.rps_ratio) == (0.01, 0.01, 0.01)


def test_added_latency_is_paired_and_only_at_the_same_rate() -> None:
    runs = [run("direct", 0, r, "rate", p99=d, rate=100.0) for r, d in enumerate([1.0, 5.0, 1.0])]
    runs += [run("tailmeter", 0, r, "rate", p99=t, rate=100.0) for r, t in enumerate([1.5, 5.2, 1.9])]
    runs += [run("litellm", 0, 0, "rate", p99=50.0, rate=3.0)]
    rate = report.index(runs, "rate")
    added = report.paired(rate[("tailmeter", "a")], rate[("direct", "a")], report.added("p99_ms"))
    assert added == pytest.approx((0.5, 0.2, 0.9))
    assert report.paired(rate[("litellm", "a")], rate[("direct", "a")], report.added("p99_ms")) == (None,) * 3


def test_targets_are_decided_by_the_median_and_show_the_range() -> None:
    runs = [run("nginx", 1000.0, r) for r in range(3)]
    runs += [run("tailmeter", rps, r) for r, rps in enumerate([950.0, 800.0, 920.0])]
    runs += [run("direct", 0, r, "rate", p99=1.0, rate=500.0) for r in range(3)]
    runs += [run("tailmeter", 0, r, "rate", p99=p, rate=500.0) for r, p in enumerate([1.2, 1.5, 2.5])]
    results = {"runs": runs, "workloads": ["a"], "ttft": [], "memory": []}
    assert report.targets(results) == [
        "- throughput (a) ≥ 0.9× nginx: 0.92 (0.80–0.95)× — met",
        "- p99 added latency (a) < 1.0 ms at 500/s (half of nginx's throughput): 0.500 (0.200–1.500) ms — met",
    ]

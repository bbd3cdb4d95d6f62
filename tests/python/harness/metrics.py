"""Read tailmeter's /metrics and compare before/after deltas.

Tests never assume an absolute counter value: they scrape before acting and
after, and assert on the difference, so test order does not matter. A
request's usage record is written in tailmeter's `logging` phase, which can
finish a moment after the client has read the last byte, so `Delta.expect`
polls (bounded) until every expected delta holds, then checks once more after
a short pause so a late double count is caught too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx2
from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]
Series = dict[Key, float]

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")


@dataclass(frozen=True)
class Usage:
    """The five figures tailmeter counts per request."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def by_type(self) -> dict[str, int]:
        return {t: getattr(self, t) for t in TOKEN_TYPES}

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(*(getattr(self, t) + getattr(other, t) for t in TOKEN_TYPES))


def parse(text: str) -> Series:
    """Every sample of a Prometheus text exposition, keyed by sample name and label set."""
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def total(series: Series, name: str, labels: dict[str, str]) -> float:
    """Sum of the samples called `name` whose labels include all of `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and wanted <= ls)


class Metrics:
    """Scrapes one tailmeter admin listener."""

    def __init__(self, admin: str):
        self.url = f"http://{admin}/metrics"

    def scrape(self) -> Series:
        with httpx2.Client(timeout=10.0, trust_env=False) as http:
            resp = http.get(self.url)
        resp.raise_for_status()
        return parse(resp.text)

    def value(self, name: str, **labels: str) -> float:
        return total(self.scrape(), name, labels)

    def delta(self) -> "Delta":
        return Delta(self)


@dataclass
class Expect:
    """One expected change: the sum over series `name` matching `labels` moves by `delta`."""

    name: str
    labels: dict[str, str]
    delta: float

    def describe(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}"


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


class Delta:
    """A before-snapshot, taken when made; `expect*` compare later scrapes against it."""

    POLL_TIMEOUT_S = 5.0
    SETTLE_S = 0.3
    QUIET_S = 1.0

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.before = metrics.scrape()

    def now(self, name: str, **labels: str) -> float:
        """The change so far of the sum of `name` over series matching `labels`."""
        after = self.metrics.scrape()
        return total(after, name, labels) - total(self.before, name, labels)

    def _mismatches(self, expects: list[Expect]) -> list[str]:
        after = self.metrics.scrape()
        bad = []
        for e in expects:
            got = total(after, e.name, e.labels) - total(self.before, e.name, e.labels)
            if not _close(got, e.delta):
                bad.append(f"{e.describe()}: expected delta {e.delta:g}, got {got:g}")
        return bad

    def expect(self, expects: list[Expect], timeout_s: float = POLL_TIMEOUT_S) -> None:
        """Assert every expected delta, waiting (at most `timeout_s`) for the usage record to land."""
        if all(e.delta == 0 for e in expects):
            time.sleep(self.QUIET_S)
        deadline = time.monotonic() + timeout_s
        bad = self._mismatches(expects)
        while bad and time.monotonic() < deadline:
            time.sleep(0.1)
            bad = self._mismatches(expects)
        if not bad:
            time.sleep(self.SETTLE_S)
            bad = self._mismatches(expects)
        assert not bad, "metric deltas differ:\n  " + "\n  ".join(bad)

    def expect_usage(
        self,
        *,
        identity: str,
        provider: str,
        model: str,
        endpoint: str,
        usage: Usage,
        code: str = "200",
        cost: float | None = None,
    ) -> None:
        """Tokens of all five types moved by `usage`, one request was counted with `code`, and
        (when given) the cost moved by `cost`."""
        who = {"identity": identity, "provider": provider, "model": model}
        expects = [Expect("tailmeter_tokens_total", {**who, "type": t}, n) for t, n in usage.by_type().items()]
        expects.append(Expect("tailmeter_requests_total", {**who, "endpoint": endpoint, "code": code}, 1))
        if cost is not None:
            expects.append(Expect("tailmeter_cost_usd_total", who, cost))
        self.expect(expects)

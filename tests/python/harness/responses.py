"""What the Responses tests share: the model they use, their rows, and their checks against the
simulator's bill."""

from __future__ import annotations

from harness import cli_clients as cc
from harness.clients import Tailmeter
from harness.config import ALICE
from harness.metrics import TOKEN_TYPES, Expect, Usage
from harness.sim import Sim

MODEL = "gpt-5-nano"
ZERO = Usage(0, 0, 0, 0, 0)


def response_rows(tm: Tailmeter, since_ms: int, expect: int) -> list[dict]:
    """The Responses rows (`responses`, `count_tokens`) of requests started since `since_ms`."""
    rows = cc.event_rows(tm, since_ms, expect)
    return [r for r in rows if r["endpoint"] in ("responses", "count_tokens")]


def row_usage(row: dict) -> Usage:
    return Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
                 row["cache_write_tokens"], row["reasoning_tokens"])


def expect_tokens(delta, usage: Usage) -> None:
    """Alice's tokens for the model moved by exactly `usage`, and no Responses request counted
    its usage as missing (a cut background stream runs on, a retrieval bills nothing itself)."""
    who = {"identity": ALICE, "provider": "openai", "model": MODEL}
    expects = [Expect("tailmeter_tokens_total", {**who, "type": t}, getattr(usage, t)) for t in TOKEN_TYPES]
    missing = Expect("tailmeter_usage_missing_total", {"endpoint": "responses"}, 0)
    delta.expect([*expects, missing])


def created_usage(sim: Sim, marker: dict[str, str]) -> Usage:
    """What the simulator billed for the one create call carrying `marker`."""
    return cc.sim_usage(sim.one(marker))

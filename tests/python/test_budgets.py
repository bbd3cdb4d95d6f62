"""Token budgets end to end: a `reject` budget answers 429 (in the endpoint's
own error format, with `retry-after` and a message naming the budget, its use
and its reset) from the request after it is spent until its window ends; an
`alert` budget never blocks; a request in flight when the budget runs out
completes and is counted; the gauges and /tailmeter/whoami show the use.

Windows are fixed and aligned to the epoch, so each test that depends on
staying inside one window first waits for a fresh one (bounded by the window).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from harness import config as cfg
from harness import expected
from harness.clients import Tailmeter, http_client
from harness.metrics import Expect
from harness.sim import Sim
from harness.tailnet import Budget, Setup, Static, chat, launch, messages, whoami

K8S_SRC, ALICE_SRC, CI_SRC = "127.0.0.2", "127.0.0.3", "127.0.0.4"
ALICE = "alice@example.com"
WINDOW_S = 4
CHAT_TOKENS = expected.CHAT_NONSTREAM.input + expected.CHAT_NONSTREAM.output
STREAM_TOKENS = expected.CHAT_STREAM.input + expected.CHAT_STREAM.output


@pytest.fixture(scope="module")
def tm(binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    setup = Setup(
        statics=[
            Static(f"{K8S_SRC}/32", tags=["tag:k8s"]),
            Static(f"{ALICE_SRC}/32", login=ALICE),
            Static(f"{CI_SRC}/32", tags=["tag:ci"]),
        ],
        budgets=[
            Budget("k8s-burst", "tag", "tag:k8s", 100, f"{WINDOW_S}s", "reject"),
            Budget("alice-daily", "identity", ALICE, 50, "24h", "alert"),
            Budget("ci-hourly", "identity", "tag:ci", 30, "1h", "reject"),
        ],
    )
    keys = {cfg.OPENAI_KEY_ENV: sim.openai_key, cfg.ANTHROPIC_KEY_ENV: sim.anthropic_key}
    instance = launch(binaries["tailmeter"], tmp_path_factory.mktemp("budgets"), setup, sim.base_url, keys)
    yield instance
    instance.proc.stop()


def wait_for_window_start(window_s: float, margin_s: float = 0.1) -> None:
    """Sleep (at most one window) until just after a window boundary."""
    time.sleep(window_s - (time.time() % window_s) + margin_s)


def budget_used(tm: Tailmeter, budget: str) -> float:
    return tm.metrics.value("tailmeter_budget_used_tokens", budget=budget)


def wait_used(tm: Tailmeter, budget: str, want: float) -> float:
    """The used gauge once it reaches `want` (the record lands just after the response)."""
    deadline = time.monotonic() + 5
    used = budget_used(tm, budget)
    while used != want and time.monotonic() < deadline:
        time.sleep(0.05)
        used = budget_used(tm, budget)
    return used


def test_gauges_show_every_budget(tm: Tailmeter) -> None:
    series = tm.metrics.scrape()
    limits = {
        dict(labels)["budget"]: (dict(labels), value)
        for (name, labels), value in series.items()
        if name == "tailmeter_budget_limit_tokens"
    }
    assert limits["k8s-burst"] == ({"budget": "k8s-burst", "window": f"{WINDOW_S}s", "tag": "tag:k8s", "identity": ""}, 100)
    assert limits["alice-daily"] == ({"budget": "alice-daily", "window": "24h", "tag": "", "identity": ALICE}, 50)


def test_reject_budget_stops_the_next_request_until_the_window_ends(tm: Tailmeter) -> None:
    wait_for_window_start(WINDOW_S)
    assert chat(tm, K8S_SRC, "gpt-4o").status_code == 200  # 112 tokens of 100: spent now
    assert wait_used(tm, "k8s-burst", CHAT_TOKENS) == CHAT_TOKENS

    refused = chat(tm, K8S_SRC, "gpt-4o")
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exhausted")
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    for part in ("tag:k8s", "openai/gpt-4o", '"k8s-burst"', f"{CHAT_TOKENS} of 100 tokens", f"{WINDOW_S}s window", "resets at"):
        assert part in error["message"], error["message"]

    # The Anthropic endpoint answers in Anthropic's format.
    anthropic = messages(tm, K8S_SRC, "claude-haiku-4-5")
    assert anthropic.status_code == 429
    body = anthropic.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "k8s-burst" in body["error"]["message"]
    assert int(anthropic.headers["retry-after"]) >= 1

    me = whoami(tm, K8S_SRC).json()
    (standing,) = [b for b in me["budgets"] if b["name"] == "k8s-burst"]
    assert standing["exhausted"] and standing["used"] == CHAT_TOKENS and standing["on_exceed"] == "reject"
    assert standing["resets_at"].endswith("Z")

    time.sleep(retry_after + 0.2)
    assert chat(tm, K8S_SRC, "gpt-4o").status_code == 200, "a new window lets it through"


def test_idle_budget_gauge_rolls_over(tm: Tailmeter) -> None:
    wait_for_window_start(WINDOW_S)
    assert chat(tm, K8S_SRC, "gpt-4o").status_code == 200
    assert wait_used(tm, "k8s-burst", CHAT_TOKENS) == CHAT_TOKENS
    time.sleep(WINDOW_S)
    assert budget_used(tm, "k8s-burst") == 0


def test_alert_budget_never_blocks(tm: Tailmeter) -> None:
    before = budget_used(tm, "alice-daily")
    for _ in range(3):
        assert chat(tm, ALICE_SRC, "gpt-4o").status_code == 200
    assert wait_used(tm, "alice-daily", before + 3 * CHAT_TOKENS) == before + 3 * CHAT_TOKENS
    (standing,) = whoami(tm, ALICE_SRC).json()["budgets"]
    assert standing["name"] == "alice-daily" and standing["exhausted"] and standing["on_exceed"] == "alert"
    assert whoami(tm, K8S_SRC).json()["budgets"][0]["name"] == "k8s-burst", "budgets apply by subject"


def test_a_request_in_flight_completes_and_is_counted(tm: Tailmeter) -> None:
    """A slow stream started before the budget runs out finishes whole and is counted."""
    if 3600 - time.time() % 3600 < 30:
        time.sleep(3600 - time.time() % 3600 + 0.5)  # never straddle the hourly window
    outcome: dict[str, object] = {}

    def slow_stream() -> None:
        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with http_client(CI_SRC) as http:
            with http.stream(
                "POST", f"{tm.base_url}/v1/chat/completions", json=body, headers={"x-sim-fault": "chunk-delay-ms=150"}
            ) as resp:
                outcome["status"] = resp.status_code
                outcome["body"] = b"".join(resp.iter_bytes())

    thread = threading.Thread(target=slow_stream)
    thread.start()
    time.sleep(0.3)  # the stream is under way
    assert chat(tm, CI_SRC, "gpt-4o").status_code == 200  # 112 tokens: the 30-token budget is spent
    assert chat(tm, CI_SRC, "gpt-4o").status_code == 429
    thread.join(30)
    assert not thread.is_alive()
    assert outcome["status"] == 200
    assert b"data: [DONE]" in outcome["body"], outcome["body"][-200:]
    assert wait_used(tm, "ci-hourly", CHAT_TOKENS + STREAM_TOKENS) == CHAT_TOKENS + STREAM_TOKENS


def test_sdks_do_not_retry_a_budget_that_resets_later(tm: Tailmeter) -> None:
    """The OpenAI and Anthropic SDKs retry a 429 twice by default, and the Anthropic one waits
    out `retry-after` however long it is: an app's call would block until the budget resets,
    hours later. A budget resetting past a minute from now says `x-should-retry: false`, which
    both read: one 429 each, the error raised at once with the budget's message. (The header is
    checked before the Anthropic call, so a build without it fails here rather than hang.)"""
    if 3600 - time.time() % 3600 < 30:
        time.sleep(3600 - time.time() % 3600 + 0.5)  # never straddle the hourly window
    chat(tm, CI_SRC, "gpt-4o")  # spends ci-hourly, if an earlier test has not
    deadline = time.monotonic() + 5  # the record lands just after the response
    while budget_used(tm, "ci-hourly") < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    delta = tm.metrics.delta()
    openai_sdk = openai.OpenAI(base_url=f"{tm.base_url}/v1", api_key="unused", http_client=http_client(CI_SRC))
    with pytest.raises(openai.RateLimitError) as refused:
        openai_sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert '"ci-hourly"' in str(refused.value)
    assert refused.value.response.headers["x-should-retry"] == "false"
    anthropic_sdk = anthropic.Anthropic(base_url=tm.base_url, api_key="unused", http_client=http_client(CI_SRC))
    with pytest.raises(anthropic.RateLimitError):
        anthropic_sdk.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    delta.expect([Expect("tailmeter_requests_total", {"identity": "tag:ci", "code": "429"}, 2)])

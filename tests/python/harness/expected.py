"""Usage each simulator fixture must yield, as tailmeter normalizes it.

Figures come from shared/fixtures/providers/README.md (the recordings' ground
truth). The embeddings figure is read from the fixture itself, and the
Anthropic cache figures follow from the recording: `message_delta` carries
running totals that revise `message_start`, so the last one wins, and input is
input_tokens + cache_creation_input_tokens + cache_read_input_tokens.
"""

from __future__ import annotations

import json

from .metrics import Usage
from .procs import REPO

CHAT_STREAM = Usage(input=14, output=8)
CHAT_NONSTREAM = Usage(input=12, output=100, reasoning=100)
RESPONSES = Usage(input=53, output=469, reasoning=448)
MESSAGES_BASIC = Usage(input=20, output=5)

CACHE_FIXTURE = "anthropic_messages_stream_cache_read_payloads.jsonl"
# message_delta: input_tokens 6, cache_creation 3337, cache_read 6289, output 198.
MESSAGES_CACHE = Usage(input=6 + 3337 + 6289, output=198, cache_read=6289, cache_write=3337)


def embeddings() -> Usage:
    """Read from the simulator's fixture, so it follows whatever recording the sim replays."""
    path = REPO / "tests" / "fixtures" / "openai_embeddings_usage.json"
    text = path.read_text()
    body = json.loads(text.split("\n", 1)[1] if text.startswith("#") else text)
    return Usage(input=body["usage"]["prompt_tokens"], output=0)


def cost_usd(usage: Usage, price: dict[str, float]) -> float:
    """The contract's cost formula (USD per million tokens; missing cache prices fall back to input)."""
    uncached = usage.input - usage.cache_read - usage.cache_write
    return (
        uncached * price["input"]
        + usage.cache_read * price.get("cache_read", price["input"])
        + usage.cache_write * price.get("cache_write", price["input"])
        + usage.output * price["output"]
    ) / 1e6

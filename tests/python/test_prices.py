"""What a request costs, with a real SDK, where a provider prices parts of its figures on their
own: Anthropic's cache writes kept an hour (`cache_control` with `"ttl": "1h"`) cost more than
the five-minute ones, and `cache_write_1h` prices them; Gemini's sound in a prompt costs more
than its text, and `audio_input` prices it. (OpenAI's images, audio and their tokens:
test_media.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import Tailmeter, anthropic_client
from harness.config import ALICE, SRC_ALICE
from harness.metrics import Expect
from harness.sim import Sim

from conftest import launch_instance

MODEL = "claude-sonnet-4-5"
GEMINI = "gemini-2.5-flash"
# Anthropic's list: input 3, a read 0.30, a five-minute write 1.25 times the input, an hour's 2 times.
PRICES = f"""
[prices."{MODEL}"]
input = 3.00
output = 15.00
cache_read = 0.30
cache_write = 3.75
cache_write_1h = 6.00

[prices."{GEMINI}"]
input = 0.30
audio_input = 1.00
output = 2.50
"""


@pytest.fixture
def priced(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    # The harness prices gpt-4o in every config.
    providers = [
        cfg.Provider("anthropic", "anthropic", synth_sim.base_url, f"${{{cfg.ANTHROPIC_KEY_ENV}}}", [MODEL]),
        cfg.Provider("openai", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}", ["gpt-4o"]),
        cfg.Provider("gemini", "gemini", synth_sim.base_url, f"${{{cfg.GEMINI_KEY_ENV}}}", [GEMINI]),
    ]
    tm = launch_instance(binaries["tailmeter"], tmp_path, providers, extra=PRICES)
    yield tm
    tm.proc.stop()


def test_cache_writes_kept_an_hour_cost_their_own_price(priced: Tailmeter, synth_sim: Sim) -> None:
    client = anthropic_client(priced, SRC_ALICE)
    start_ms, delta = int(time.time() * 1000), priced.metrics.delta()
    system = [
        {"type": "text", "text": "House rules. " * 600, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "Today's notes. " * 600, "cache_control": {"type": "ephemeral"}},
    ]
    costs = []
    for question in ("What is on today?", "And tomorrow?"):
        with client.messages.stream(model=MODEL, max_tokens=64, system=system,
                                    messages=[{"role": "user", "content": question}]) as stream:
            usage = stream.get_final_message().usage
        written = usage.cache_creation
        five, hour = written.ephemeral_5m_input_tokens, written.ephemeral_1h_input_tokens
        costs.append((usage.input_tokens * 3.00 + usage.cache_read_input_tokens * 0.30 + five * 3.75
                      + hour * 6.00 + usage.output_tokens * 15.00) / 1e6)
        if question.startswith("What"):
            assert hour > 1024 and five > 1024 and usage.cache_read_input_tokens == 0
        else:
            assert hour == five == 0 and usage.cache_read_input_tokens > 2048

    rows = cc.event_rows(priced, start_ms, 2)
    assert [r["model"] for r in rows] == [MODEL] * 2
    for row, cost in zip(rows, costs):
        assert row["cost_usd"] == pytest.approx(cost, rel=1e-9), (row, cost)
    delta.expect([Expect("tailmeter_cost_usd_total", {"identity": ALICE, "model": MODEL}, sum(costs))])


def test_sound_in_a_gemini_prompt_costs_its_own_price(priced: Tailmeter, synth_sim: Sim) -> None:
    options = types.HttpOptions(base_url=priced.base_url, api_version="v1beta")
    gemini = genai.Client(api_key="gm-client-key", http_options=options)
    start_ms, delta = int(time.time() * 1000), priced.metrics.delta()
    # Three seconds of 16 kHz sound, and a picture, inline.
    sound = types.Part.from_bytes(data=b"RIFF" + bytes(95_996), mime_type="audio/wav")
    picture = types.Part.from_bytes(data=b"\x89PNG" + bytes(2_000), mime_type="image/png")
    prompt = [sound, picture, "Transcribe this and describe the picture."]
    costs = []
    whole = gemini.models.generate_content(model=GEMINI, contents=prompt)
    streamed = list(gemini.models.generate_content_stream(model=GEMINI, contents=prompt))
    for usage in (whole.usage_metadata, streamed[-1].usage_metadata):
        by = {d.modality.name: d.token_count for d in usage.prompt_tokens_details}
        assert by["AUDIO"] == 3 * 32 and by["IMAGE"] == 258 and by["TEXT"] > 0
        output = usage.candidates_token_count + (usage.thoughts_token_count or 0)
        # Pictures at the input price (none set apart), sound at its own.
        costs.append(((by["TEXT"] + by["IMAGE"]) * 0.30 + by["AUDIO"] * 1.00 + output * 2.50) / 1e6)

    rows = cc.event_rows(priced, start_ms, 2)
    assert [(r["model"], r["stream"]) for r in rows] == [(GEMINI, 0), (GEMINI, 1)]
    for row, cost in zip(rows, costs):
        assert row["cost_usd"] == pytest.approx(cost, rel=1e-9), (row, cost)
    delta.expect([Expect("tailmeter_cost_usd_total", {"identity": ALICE, "model": GEMINI}, sum(costs))])

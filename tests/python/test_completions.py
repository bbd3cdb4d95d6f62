"""Legacy completions (`POST /v1/completions`) through tailmeter, with the OpenAI Python SDK, to an
OpenAI-compatible server as code-completion plugins use them (fill-in-the-middle with `suffix`,
streamed as the editor types).

The usage is read as for chat: exactly from the provider's report; a stream asked without
`include_usage` gets it asked for on the client's behalf and taken back out of what the client
sees; a stream the client stops reading is estimated from the text that passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import Tailmeter, openai_client
from harness.config import ALICE, SRC_ALICE
from harness.metrics import Expect
from harness.sim import Sim, new_marker

from conftest import launch_instance

MODEL = "qwen2.5-coder:7b"
PREFIX = "def fibonacci(n):\n    "
SUFFIX = "\n\nprint(fibonacci(10))\n"


@pytest.fixture
def coder(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    """An instance with an OpenAI-compatible provider too (an Ollama, say), serving a coder model."""
    ollama = cfg.Provider("ollama", "openai-compatible", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}", [MODEL])
    providers = cfg.clients_providers(synth_sim.base_url) + [ollama]
    tm = launch_instance(binaries["tailmeter"], tmp_path, providers, grants=[([ALICE], [f"ollama/{MODEL}"])])
    yield tm
    tm.proc.stop()


def rows_since(tm: Tailmeter, since_ms: int, expect: int) -> list[dict]:
    return cc.event_rows(tm, since_ms, expect)


def test_completions_are_metered_exactly_streamed_or_not(coder: Tailmeter, synth_sim: Sim) -> None:
    client = openai_client(coder, SRC_ALICE)
    start_ms, delta, mark = int(time.time() * 1000), coder.metrics.delta(), len(synth_sim.requests())
    whole = client.completions.create(model=MODEL, prompt=PREFIX, suffix=SUFFIX, max_tokens=64)
    assert whole.object == "text_completion" and whole.choices[0].text
    chunks = list(client.completions.create(model=MODEL, prompt=PREFIX, suffix=SUFFIX, max_tokens=64, stream=True))
    assert chunks and all(c.usage is None for c in chunks), "the usage tailmeter asked for is not shown"
    assert all(c.choices for c in chunks), "nor its usage-only chunk"
    asked = list(client.completions.create(model=MODEL, prompt=PREFIX, max_tokens=64, stream=True,
                                           stream_options={"include_usage": True}))
    assert asked[-1].choices == [] and asked[-1].usage.completion_tokens > 0

    reqs = cc.since(synth_sim, mark)
    assert [r.target for r in reqs] == ["/v1/completions"] * 3
    cc.expect_events(coder, start_ms, ALICE, "ollama", reqs)
    cc.expect_metered(delta, ALICE, "ollama", reqs)
    rows = rows_since(coder, start_ms, 3)
    # The stream that did not ask has the provider's figures too: tailmeter asked for them.
    assert {(r["endpoint"], r["usage_source"]) for r in rows} == {("completions", "provider")}
    assert whole.usage.prompt_tokens == rows[0]["input_tokens"]


def test_a_completion_the_editor_stops_reading_is_estimated(coder: Tailmeter, synth_sim: Sim) -> None:
    """The user typed on: the plugin drops the stream. Its tokens are estimated from the prompt
    and from the text that passed, and counted as such."""
    client = openai_client(coder, SRC_ALICE)
    start_ms, delta = int(time.time() * 1000), coder.metrics.delta()
    slow = {**new_marker(), "x-sim-fault": "chunk-delay-ms=50"}
    stream = client.completions.create(model=MODEL, prompt=PREFIX * 20, max_tokens=400, stream=True,
                                       extra_headers=slow)
    seen = []
    for chunk in stream:
        seen.append(chunk.choices[0].text)
        if len(seen) == 3:
            break
    stream.close()
    rows = rows_since(coder, start_ms, 1)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["endpoint"], row["usage_source"]) == ("completions", "estimated"), row
    assert row["input_tokens"] > 0 and 0 < row["output_tokens"] <= len("".join(seen))
    delta.expect([Expect("tailmeter_usage_missing_total",
                         {"provider": "ollama", "endpoint": "completions", "reason": "client_disconnect"}, 1)])

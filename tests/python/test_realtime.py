"""OpenAI's Realtime API through tailmeter, with the OpenAI Python SDK's WebSocket client
(`client.realtime.connect`), as voice agents use it: `GET /v1/realtime?model=…` upgraded to a
WebSocket, the model routed and granted from the query, the provider's key swapped in, every
event passed both ways untouched, and the session metered as one row when it closes: the sum of
its responses' `response.done` usage, its sound priced apart (`audio_input`, `audio_output`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets.exceptions

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, openai_client
from harness.config import ALICE, SRC_ALICE, SRC_CI
from harness.metrics import Expect
from harness.procs import start_sim
from harness.sim import Sim

from conftest import launch_instance

MODEL = "gpt-realtime"
PRICES = f"""
[prices."{MODEL}"]
input = 4.00
cache_read = 0.40
audio_input = 32.00
output = 16.00
audio_output = 64.00
"""


@pytest.fixture
def realtime(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    """An instance whose OpenAI provider serves a Realtime model, granted to Alice only."""
    provider = cfg.Provider("openai", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}",
                            [MODEL, "gpt-realtime-mini", "gpt-4o"])
    # A session outlives any request header deadline: a short one shows it does not apply.
    tm = launch_instance(binaries["tailmeter"], tmp_path, [provider],
                         grants=[([ALICE], [f"openai/{MODEL}", "openai/gpt-4o"])], extra=PRICES,
                         client_header_timeout="1s")
    yield tm
    tm.proc.stop()


def connect(tm: Tailmeter, src: str, model: str, headers: dict[str, str] | None = None):
    """The SDK's Realtime connection to `tm` from `src` (the WebSocket has its own socket, not
    the SDK's HTTP client's), with `headers` added to its handshake."""
    options = {"source_address": (src, 0)}
    return openai_client(tm, src).realtime.connect(model=model, websocket_connection_options=options,
                                                   extra_headers=headers or {})


def logged_sessions(sim: Sim, mark: int) -> list:
    """The requests the simulator logged after `mark`, once the last one's session has ended (it
    is logged, with its figures, when it closes)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reqs = cc.since(sim, mark)
        if reqs and reqs[-1].raw.get("usage"):
            return reqs
        time.sleep(0.1)
    return cc.since(sim, mark)


def turn(connection, **item) -> dict:
    """One user turn: the item, a response, the events until `response.done`; that event's usage."""
    if item:
        connection.conversation.item.create(item={"type": "message", "role": "user", **item})
    connection.response.create()
    kinds = []
    for event in connection:
        kinds.append(event.type)
        if event.type == "response.done":
            assert "response.created" in kinds and kinds.index("response.created") < len(kinds) - 2, kinds
            return event.response.usage.to_dict()
    raise AssertionError(f"the session ended before response.done: {kinds}")


def test_a_realtime_session_is_metered_as_the_sum_of_its_responses(realtime: Tailmeter, synth_sim: Sim) -> None:
    start_ms, delta, mark = int(time.time() * 1000), realtime.metrics.delta(), len(synth_sim.requests())
    sound = base64.b64encode(bytes(48_000 * 3)).decode()  # three seconds of 24 kHz 16-bit sound
    usages = []
    # Offered as a browser or Node's `ws` offers it; the gateway could not read such messages.
    compression = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    with connect(realtime, SRC_ALICE, f"openai/{MODEL}", compression) as connection:
        created = connection.recv()
        assert created.type == "session.created" and created.session.model == MODEL
        connection.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        usages.append(turn(connection, content=[{"type": "input_text", "text": "Good morning! " * 300}]))
        # The user thinks for longer than the gateway's client_header_timeout.
        connection.input_audio_buffer.append(audio=sound)
        time.sleep(1.5)
        connection.input_audio_buffer.commit()
        usages.append(turn(connection))
        usages.append(turn(connection, content=[{"type": "input_audio", "audio": sound}]))

    session, = logged_sessions(synth_sim, mark)
    assert session.target == f"/v1/realtime?model={MODEL}", session.target
    assert session.header("authorization") == [f"Bearer {synth_sim.openai_key}"]
    assert not session.leaked([CLIENT_OPENAI_KEY])
    assert not session.header("sec-websocket-extensions")

    total = {k: sum(u[k] for u in usages) for k in ("input_tokens", "output_tokens")}
    cached = sum(u["input_token_details"]["cached_tokens"] for u in usages)
    assert cached > 0 and all(u["input_token_details"]["audio_tokens"] > 0 for u in usages[1:])
    assert session.raw["usage"]["input"] == total["input_tokens"]

    def cost(u: dict) -> float:
        details, out = u["input_token_details"], u["output_token_details"]
        cached_audio = details["cached_tokens_details"]["audio_tokens"]
        audio_in = details["audio_tokens"] - cached_audio
        text_in = u["input_tokens"] - details["cached_tokens"] - audio_in
        return (text_in * 4.00 + audio_in * 32.00 + details["cached_tokens"] * 0.40
                + out["text_tokens"] * 16.00 + out["audio_tokens"] * 64.00) / 1e6

    row, = cc.event_rows(realtime, start_ms, 1)
    assert (row["model"], row["endpoint"], row["stream"], row["status"]) == (MODEL, "realtime", 1, 101)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == \
        (total["input_tokens"], total["output_tokens"], cached)
    assert row["usage_source"] == "provider"
    assert row["cost_usd"] == pytest.approx(sum(cost(u) for u in usages), rel=1e-9)
    who = {"identity": ALICE, "provider": "openai", "model": MODEL}
    delta.expect([
        Expect("tailmeter_requests_total", {**who, "endpoint": "realtime", "code": "101"}, 1),
        Expect("tailmeter_tokens_total", {**who, "type": "input"}, total["input_tokens"]),
        Expect("tailmeter_tokens_total", {**who, "type": "output"}, total["output_tokens"]),
        Expect("tailmeter_usage_missing_total", {}, 0),
    ])


def test_realtime_refusals_come_before_the_upgrade(realtime: Tailmeter, synth_sim: Sim) -> None:
    mark = len(synth_sim.requests())
    refusals = [
        (SRC_CI, MODEL, 403),  # not granted
        (SRC_ALICE, "gpt-realtime-mini", 403),  # configured, not granted to Alice
        (SRC_ALICE, "gpt-realtime-2099", 404),  # not configured
    ]
    for src, model, status in refusals:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            with connect(realtime, src, model) as connection:
                connection.recv()
        answer = refused.value.response
        error = json.loads(answer.body)["error"]  # OpenAI's error format
        assert answer.status_code == status and model in error["message"], (model, error)
        assert error["code"] == {403: "model_not_granted", 404: "model_not_found"}[status]
    assert cc.since(synth_sim, mark) == []


def test_a_provider_spoken_over_http2_gets_its_sessions_over_http1(
        binaries: dict[str, Path], fixtures_dir: Path, synth_sim: Sim, tmp_path: Path) -> None:
    """A WebSocket is opened over HTTP/1.1 (RFC 6455), whatever `http2` says for the provider."""
    (tmp_path / "sim").mkdir()
    proc, port = start_sim(binaries["sim"], fixtures_dir, synth_sim.openai_key, synth_sim.anthropic_key,
                           tmp_path / "sim", ("--synthesize", "--http2"))
    h2_sim = Sim(port, synth_sim.openai_key, synth_sim.anthropic_key)
    provider = cfg.Provider("openai", "openai", h2_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}", [MODEL, "gpt-4o"],
                            http2=True)
    (tmp_path / "tm").mkdir()
    tm = launch_instance(binaries["tailmeter"], tmp_path / "tm", [provider], grants=[([ALICE], ["openai/*"])])
    try:
        start_ms = int(time.time() * 1000)
        with connect(tm, SRC_ALICE, MODEL) as connection:
            assert connection.recv().type == "session.created"
            usage = turn(connection, content=[{"type": "input_text", "text": "Hello"}])
        row, = cc.event_rows(tm, start_ms, 1)
        assert (row["endpoint"], row["status"], row["input_tokens"]) == ("realtime", 101, usage["input_tokens"])
        session, = logged_sessions(h2_sim, 0)
        assert session.raw["version"] == "HTTP/1.1"
    finally:
        tm.proc.stop()
        proc.stop()

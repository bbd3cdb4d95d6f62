"""The official OpenAI Python SDK through tailmeter, against provider-sim.

Each test checks what the client sees, what tailmeter counted (metric deltas
for all five token types, the request, and the cost where a price exists),
that the response carries `x-tailmeter-request-id`, and what the simulator
received (bare model name, the provider's key, never the client's).
"""

from __future__ import annotations

import hashlib
import json

import openai
import pytest

from harness import expected
from harness.clients import (
    CLIENT_OPENAI_KEY,
    REQUEST_ID,
    Capture,
    Tailmeter,
    anthropic_client,
    assert_upstream_openai_auth,
    http_client,
    openai_client,
)
from harness.config import ALICE, CI_K8S, GPT_4O_PRICE, GRANTED, K8S, SRC_ALICE, SRC_CI, SRC_K8S
from harness.metrics import Usage
from harness.sim import Sim, SimRequest, new_marker
from harness.sse import json_payloads

MESSAGES = [{"role": "user", "content": "Count to two."}]
CHUNKED = {"x-sim-fault": "chunk-bytes=7,chunk-delay-ms=1"}


def upstream(sim: Sim, marker: dict[str, str], model: str) -> SimRequest:
    """The one request the simulator got for `marker`, checked for model and credentials."""
    req = sim.one(marker)
    assert_upstream_openai_auth(req, sim.openai_key)
    assert req.model == model, f"simulator saw model {req.model!r}"
    return req


def test_chat_nonstream(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = openai_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.chat.completions.with_raw_response.create(model="gpt-5-nano", messages=MESSAGES, extra_headers=marker)
    completion = raw.parse()
    assert raw.headers.get(REQUEST_ID)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 100)
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-5-nano", endpoint="chat_completions",
        usage=expected.CHAT_NONSTREAM, cost=0.0,
    )
    upstream(sim, marker, "gpt-5-nano")


def _direct_chat_stream(sim: Sim, body: bytes) -> bytes:
    """What the simulator itself streams for `body` (no tailmeter in between)."""
    resp = sim.post_direct(
        "/v1/chat/completions", body,
        {"authorization": f"Bearer {sim.openai_key}", "content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    return resp.content


def test_chat_stream_without_include_usage(tailmeter: Tailmeter, sim: Sim) -> None:
    """The client did not ask for usage: it must get no usage chunk, yet tailmeter counts 14/8."""
    capture, marker = Capture(), new_marker()
    client = openai_client(tailmeter, SRC_ALICE, capture)
    delta = tailmeter.metrics.delta()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=marker
    )
    assert raw.headers.get(REQUEST_ID)
    chunks = list(raw.parse())
    assert chunks, "no chunks streamed"
    assert [c for c in chunks if c.usage is not None] == []
    assert [c for c in chunks if not c.choices] == [], "a choices-less (usage) chunk reached the client"

    direct = json_payloads(_direct_chat_stream(sim, capture.bodies[0]))
    assert len(chunks) == len(direct), "client saw a different number of chunks than the sim sends"
    for chunk, sent in zip(chunks, direct):
        assert ("usage" in chunk.model_fields_set) == ("usage" in sent), f"usage key differs: {sent}"

    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions",
        usage=expected.CHAT_STREAM, cost=expected.cost_usd(expected.CHAT_STREAM, GPT_4O_PRICE),
    )
    upstream(sim, marker, "gpt-4o")


def test_chat_stream_without_include_usage_is_what_the_provider_sends(tailmeter: Tailmeter, sim: Sim) -> None:
    """Byte for byte, the client gets the stream the provider sends a client that did not ask for usage."""
    body = json.dumps({"model": "gpt-4o", "messages": MESSAGES, "stream": True}).encode()
    headers = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "content-type": "application/json"}
    with http_client(SRC_ALICE) as http:
        via = http.post(f"{tailmeter.base_url}/v1/chat/completions", content=body, headers=headers)
    assert via.status_code == 200, via.text
    assert via.content == _direct_chat_stream(sim, body)


def test_a_large_answer_read_in_joined_pieces_arrives_intact_and_metered(
    tailmeter_clients: Tailmeter, synth_sim: Sim
) -> None:
    """An answer many times 64 KiB, sent as fast as the provider can: tailmeter passes on what
    arrives together as one piece of at most 64 KiB (vendor/README.md, change 2), so pieces are
    joined, a piece that would pass the limit is held for the next, and the last one ends the
    body. The client gets the provider's bytes exactly, and the usage is the provider's."""
    inputs = [f"document {i}" for i in range(48)]
    body = json.dumps({"model": "text-embedding-3-small", "input": inputs, "dimensions": 3072}).encode()
    headers = {"authorization": f"Bearer {synth_sim.openai_key}", "content-type": "application/json"}
    direct = synth_sim.post_direct("/v1/embeddings", body, headers)
    assert direct.status_code == 200, direct.text
    assert len(direct.content) > 16 * 64 * 1024, len(direct.content)
    delta = tailmeter_clients.metrics.delta()
    with http_client(SRC_ALICE) as http:
        via = http.post(
            f"{tailmeter_clients.base_url}/v1/embeddings", content=body,
            headers={**headers, "authorization": f"Bearer {CLIENT_OPENAI_KEY}"},
        )
    assert via.status_code == 200, via.text
    assert via.content == direct.content
    delta.expect_usage(
        identity=ALICE, provider="openai", model="text-embedding-3-small", endpoint="embeddings",
        usage=Usage(**json.loads(via.headers["x-sim-usage"])),
    )


@pytest.mark.parametrize("fault", [{}, CHUNKED], ids=["whole", "7-byte-pieces"])
def test_chat_stream_with_include_usage(tailmeter: Tailmeter, sim: Sim, fault: dict[str, str]) -> None:
    client, marker = openai_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers={**marker, **fault},
    )
    assert raw.headers.get(REQUEST_ID)
    chunks = list(raw.parse())
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1], "expected exactly one usage chunk, last"
    assert (with_usage[0].usage.prompt_tokens, with_usage[0].usage.completion_tokens) == (14, 8)
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions",
        usage=expected.CHAT_STREAM, cost=expected.cost_usd(expected.CHAT_STREAM, GPT_4O_PRICE),
    )
    upstream(sim, marker, "gpt-4o")


def test_responses_stream(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = openai_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.responses.with_raw_response.create(
        model="gpt-5-nano", input="Think, then answer.", stream=True, extra_headers=marker
    )
    assert raw.headers.get(REQUEST_ID)
    events = list(raw.parse())
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1 and completed[0].response.usage is not None
    usage = completed[0].response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.output_tokens_details.reasoning_tokens) == (53, 469, 448)
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-5-nano", endpoint="responses", usage=expected.RESPONSES
    )
    upstream(sim, marker, "gpt-5-nano")


def test_responses_nonstream(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = openai_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.responses.with_raw_response.create(model="gpt-5-nano", input="Think, then answer.", extra_headers=marker)
    assert raw.headers.get(REQUEST_ID)
    usage = raw.parse().usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (53, 469)
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-5-nano", endpoint="responses", usage=expected.RESPONSES
    )
    upstream(sim, marker, "gpt-5-nano")


def test_embeddings(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = openai_client(tailmeter, SRC_ALICE), new_marker()
    usage = expected.embeddings()
    delta = tailmeter.metrics.delta()
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="the quick brown fox", extra_headers=marker
    )
    assert raw.headers.get(REQUEST_ID)
    result = raw.parse()
    assert result.usage.prompt_tokens == usage.input and result.data
    delta.expect_usage(
        identity=ALICE, provider="openai", model="text-embedding-3-small", endpoint="embeddings", usage=usage
    )
    upstream(sim, marker, "text-embedding-3-small")


def test_five_mib_body_arrives_intact(tailmeter: Tailmeter, sim: Sim) -> None:
    """A 5 MiB non-stream request reaches the provider byte for byte (tailmeter routes on `model`)."""
    line = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(64))
    content = (line * (5 * 1024 * 1024 // len(line) + 1))[: 5 * 1024 * 1024]
    capture, marker = Capture(), new_marker()
    client = openai_client(tailmeter, SRC_ALICE, capture)
    delta = tailmeter.metrics.delta()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": content}], extra_headers=marker
    )
    assert raw.headers.get(REQUEST_ID)
    assert raw.parse().usage is not None
    sent = capture.bodies[0]
    assert len(sent) > 5 * 1024 * 1024
    req = upstream(sim, marker, "gpt-5-nano")
    assert (req.body_len, req.body_sha256) == (len(sent), hashlib.sha256(sent).hexdigest())
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-5-nano", endpoint="chat_completions",
        usage=expected.CHAT_NONSTREAM,
    )


def test_provider_slash_model_reaches_provider_bare(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = openai_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=MESSAGES, extra_headers=marker
    )
    assert raw.headers.get(REQUEST_ID)
    raw.parse()
    upstream(sim, marker, "gpt-4o")
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions",
        usage=expected.CHAT_NONSTREAM, cost=expected.cost_usd(expected.CHAT_NONSTREAM, GPT_4O_PRICE),
    )


@pytest.mark.parametrize("src,identity", [(SRC_ALICE, ALICE), (SRC_K8S, K8S), (SRC_CI, CI_K8S)])
def test_models_lists_exactly_the_granted(tailmeter: Tailmeter, src: str, identity: str) -> None:
    """Each list shape shows granted models only; together the two show every granted model.
    (tailmeter lists in each shape the models callable through that API family.)"""
    openai_ids = {m.id for m in openai_client(tailmeter, src).models.list().data}
    anthropic_ids = {m.id for m in anthropic_client(tailmeter, src).models.list().data}
    assert openai_ids <= GRANTED[identity], f"OpenAI list shows ungranted models: {openai_ids}"
    assert anthropic_ids <= GRANTED[identity], f"Anthropic list shows ungranted models: {anthropic_ids}"
    assert openai_ids | anthropic_ids == GRANTED[identity]


def test_sdk_error_type_for_ungranted_model(tailmeter: Tailmeter) -> None:
    """The SDK maps tailmeter's 403 to its PermissionDeniedError, message intact."""
    client = openai_client(tailmeter, SRC_CI)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="gpt-5-nano", messages=MESSAGES)
    assert "gpt-5-nano" in str(err.value)

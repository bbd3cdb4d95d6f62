"""The official Anthropic Python SDK through tailmeter, against provider-sim.

The client key travels three ways (the SDK's `api_key=`, its `auth_token=`,
and a hand-set `x-api-key` header); whichever it is, the simulator must see
only the provider key, in `x-api-key`, and no `Authorization` at all.
"""

from __future__ import annotations

import pytest

from harness import expected
from harness.clients import (
    CLIENT_ANTHROPIC_KEY,
    REQUEST_ID,
    Tailmeter,
    anthropic_client,
    assert_upstream_anthropic_auth,
    http_client,
)
from harness.config import ALICE, ANTHROPIC_MODELS, GRANTED, SRC_ALICE
from harness.metrics import Expect, TOKEN_TYPES
from harness.sim import Sim, SimRequest, new_marker

MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "What is 1 + 1?"}]
AUTH_MODES = ["api_key", "auth_token", "x-api-key"]
CHUNKED = {"x-sim-fault": "chunk-bytes=7,chunk-delay-ms=1"}
CACHE = {"x-sim-fixture": expected.CACHE_FIXTURE}


def upstream(sim: Sim, marker: dict[str, str], model: str = MODEL) -> SimRequest:
    req = sim.one(marker)
    assert_upstream_anthropic_auth(req, sim.anthropic_key)
    assert req.model == model, f"simulator saw model {req.model!r}"
    return req


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_messages_nonstream(tailmeter: Tailmeter, sim: Sim, auth: str) -> None:
    client, marker = anthropic_client(tailmeter, SRC_ALICE, auth), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES, extra_headers=marker)
    assert raw.headers.get(REQUEST_ID)
    message = raw.parse()
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 5)
    delta.expect_usage(
        identity=ALICE, provider="anthropic", model=MODEL, endpoint="messages", usage=expected.MESSAGES_BASIC
    )
    req = upstream(sim, marker)
    assert req.header("anthropic-version"), "anthropic-version did not pass through"


@pytest.mark.parametrize("auth", AUTH_MODES)
@pytest.mark.parametrize("fault", [{}, CHUNKED], ids=["whole", "7-byte-pieces"])
def test_messages_stream(tailmeter: Tailmeter, sim: Sim, auth: str, fault: dict[str, str]) -> None:
    client, marker = anthropic_client(tailmeter, SRC_ALICE, auth), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, stream=True, extra_headers={**marker, **fault}
    )
    assert raw.headers.get(REQUEST_ID)
    events = list(raw.parse())
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    final = [e for e in events if e.type == "message_delta"][-1]
    assert final.usage.output_tokens == 5
    delta.expect_usage(
        identity=ALICE, provider="anthropic", model=MODEL, endpoint="messages", usage=expected.MESSAGES_BASIC
    )
    upstream(sim, marker)


def test_messages_stream_cache_tokens(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = anthropic_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1024, messages=MESSAGES, stream=True, extra_headers={**marker, **CACHE}
    )
    assert raw.headers.get(REQUEST_ID)
    final = [e for e in raw.parse() if e.type == "message_delta"][-1]
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (6289, 3337)
    delta.expect_usage(
        identity=ALICE, provider="anthropic", model=MODEL, endpoint="messages", usage=expected.MESSAGES_CACHE
    )
    upstream(sim, marker)


def test_beta_messages_keeps_query_string(tailmeter: Tailmeter, sim: Sim) -> None:
    """/v1/messages?beta=true, as Claude Code calls it. This SDK's `client.beta.messages` no longer
    adds the query itself (it keeps `beta` as a request qualifier), so the test adds it."""
    client, marker = anthropic_client(tailmeter, SRC_ALICE, "auth_token"), new_marker()
    delta = tailmeter.metrics.delta()
    raw = client.beta.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True,
        extra_headers=marker, extra_query={"beta": "true"},
    )
    assert raw.headers.get(REQUEST_ID)
    assert list(raw.parse())[-1].type == "message_stop"
    req = upstream(sim, marker, "claude-haiku-4-5")
    assert req.target.endswith("/v1/messages?beta=true"), req.target
    delta.expect_usage(
        identity=ALICE, provider="anthropic", model="claude-haiku-4-5", endpoint="messages",
        usage=expected.MESSAGES_BASIC,
    )


def test_count_tokens_is_not_metered(tailmeter: Tailmeter, sim: Sim) -> None:
    client, marker = anthropic_client(tailmeter, SRC_ALICE), new_marker()
    delta = tailmeter.metrics.delta()
    result = client.messages.count_tokens(model=MODEL, messages=MESSAGES, extra_headers=marker)
    assert isinstance(result.input_tokens, int)
    who = {"identity": ALICE, "provider": "anthropic", "model": MODEL}
    delta.expect(
        [Expect("tailmeter_tokens_total", {**who, "type": t}, 0) for t in TOKEN_TYPES]
        + [Expect("tailmeter_requests_total", {**who, "endpoint": "messages"}, 0)]
    )
    req = upstream(sim, marker)
    assert req.target.startswith("/v1/messages/count_tokens"), req.target


def test_models_in_anthropic_shape(tailmeter: Tailmeter) -> None:
    """With `anthropic-version`, /v1/models answers in Anthropic's list shape, granted models only."""
    page = anthropic_client(tailmeter, SRC_ALICE).models.list()
    ids = {m.id for m in page.data}
    assert set(ANTHROPIC_MODELS) <= ids <= GRANTED[ALICE], ids

    headers = {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    with http_client(SRC_ALICE) as http:
        body = http.get(f"{tailmeter.base_url}/v1/models", headers=headers).json()
    assert {"data", "has_more", "first_id", "last_id"} <= body.keys(), body
    for item in body["data"]:
        assert item["type"] == "model" and {"id", "display_name", "created_at"} <= item.keys(), item

"""Bedrock InvokeModel and InvokeModelWithResponseStream (Claude Code's Bedrock mode) through
tailmeter, against the simulator's routes (tests/sim/README.md).

InvokeModel's body is the model's own (an Anthropic Messages object); Bedrock's billed figures
come in the `x-amzn-bedrock-*-token-count` headers. The streamed variant is AWS event-stream
frames, one `chunk` per Anthropic event, the last one carrying `amazon-bedrock-invocationMetrics`.
Each call must be metered with exactly the figures the simulator reported (tokens on /metrics and
the event row, `usage_source` provider), with the client's key swapped for the provider's and the
client receiving the simulator's bytes unchanged; a stream cut anywhere is metered once.
"""

from __future__ import annotations

import base64
import json
import random
import time
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.eventstream import EventStreamBuffer

from conftest import PROVIDER_BEDROCK_KEY
from harness.clients import REQUEST_ID, Tailmeter, http_client
from harness.config import ALICE, BEDROCK_MODELS, SRC_ALICE
from harness.metrics import TOKEN_TYPES, Expect, Usage
from harness.sim import Sim, new_marker
from test_stream_endings import SEED, Stream, assert_cuts_counted_once, row_usage, rows_for

MODEL = BEDROCK_MODELS[0]
PATH = f"/model/{quote(MODEL, safe='')}"
BODY = {
    "anthropic_version": "bedrock-2023-05-31", "max_tokens": 16,
    "messages": [{"role": "user", "content": "Count to two."}],
}
CLIENT_KEY = "client-bedrock-key-5f0e"
CLIENT_AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
PROVIDER = "bedrock"
ENDPOINT = "invoke"
EVENTSTREAM = "application/vnd.amazon.eventstream"


def direct(sim: Sim, action: str):
    """The simulator's own answer to this call, with the provider's key."""
    headers = {"authorization": f"Bearer {PROVIDER_BEDROCK_KEY}", "content-type": "application/json"}
    resp = sim.post_direct(f"{PATH}/{action}", json.dumps(BODY).encode(), headers)
    assert resp.status_code == 200, resp.text
    return resp


def through(tm: Tailmeter, action: str, marker: dict[str, str]):
    """The same call through tailmeter with the client's own key."""
    with http_client(SRC_ALICE) as http:
        resp = http.post(f"{tm.base_url}{PATH}/{action}", json=BODY, headers={**CLIENT_AUTH, **marker})
    assert resp.status_code == 200, resp.text
    return resp


def chunks(stream: bytes) -> list[tuple[int, dict]]:
    """Each frame's end offset and its decoded `chunk` event, read by botocore's decoder (which
    checks both CRC32s of every frame)."""
    buffer = EventStreamBuffer()
    buffer.add_data(stream)
    events = []
    for message in buffer:
        assert message.headers[":event-type"] == "chunk" and message.headers[":message-type"] == "event"
        events.append(json.loads(base64.b64decode(json.loads(message.payload)["bytes"])))
    ends, at = [], 0
    while at < len(stream):
        at += int.from_bytes(stream[at:at + 4], "big")
        ends.append(at)
    assert len(ends) == len(events) and at == len(stream)
    return list(zip(ends, events))


def metrics_usage(stream: bytes) -> Usage:
    """The figures of the last chunk's invocation metrics."""
    metrics = chunks(stream)[-1][1]["amazon-bedrock-invocationMetrics"]
    return Usage(metrics["inputTokenCount"], metrics["outputTokenCount"])


def expect_metered(tm: Tailmeter, sim: Sim, marker: dict, resp, since_ms: int, delta, usage: Usage) -> None:
    """The provider's key went upstream, tokens moved by `usage`, and one provider-sourced row."""
    upstream = sim.one(marker)
    assert upstream.header("authorization") == [f"Bearer {PROVIDER_BEDROCK_KEY}"]
    assert upstream.leaked([CLIENT_KEY]) == []
    delta.expect_usage(identity=ALICE, provider=PROVIDER, model=MODEL, endpoint=ENDPOINT, usage=usage)
    rows = rows_for(tm, since_ms, [resp.headers[REQUEST_ID]])
    row = rows[resp.headers[REQUEST_ID]]
    assert row["usage_source"] == "provider" and row["endpoint"] == ENDPOINT, row
    assert row_usage(row) == usage, row


def test_invoke_model_is_metered_from_bedrock_headers(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    expected = direct(sim, "invoke")
    usage = Usage(int(expected.headers["x-amzn-bedrock-input-token-count"]),
                  int(expected.headers["x-amzn-bedrock-output-token-count"]))
    assert usage == Usage(20, 5)
    since_ms, delta, marker = int(time.time() * 1000) - 1, tailmeter_metering.metrics.delta(), new_marker()
    resp = through(tailmeter_metering, "invoke", marker)
    assert resp.content == expected.content
    assert json.loads(resp.content)["type"] == "message"
    for name in ("content-type", "x-amzn-bedrock-input-token-count", "x-amzn-bedrock-output-token-count",
                 "x-amzn-bedrock-invocation-latency"):
        assert resp.headers[name] == expected.headers[name], name
    expect_metered(tailmeter_metering, sim, marker, resp, since_ms, delta, usage)


def test_invoke_stream_is_metered_from_invocation_metrics(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    expected = direct(sim, "invoke-with-response-stream")
    usage = metrics_usage(expected.content)
    assert usage == Usage(20, 5)
    since_ms, delta, marker = int(time.time() * 1000) - 1, tailmeter_metering.metrics.delta(), new_marker()
    resp = through(tailmeter_metering, "invoke-with-response-stream", marker)
    assert resp.headers["content-type"] == EVENTSTREAM
    assert resp.headers["x-amzn-bedrock-content-type"] == "application/json"
    assert resp.content == expected.content
    expect_metered(tailmeter_metering, sim, marker, resp, since_ms, delta, usage)


def test_boto3_invoke_calls_are_metered(tailmeter_metering: Tailmeter, monkeypatch: pytest.MonkeyPatch) -> None:
    """The official AWS SDK with a Bedrock API key, pointed at tailmeter: it parses both answers
    (checking the frames' CRCs) and each call is metered once."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", CLIENT_KEY)
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=tailmeter_metering.base_url,
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
    )
    delta = tailmeter_metering.metrics.delta()
    answer = client.invoke_model(modelId=MODEL, body=json.dumps(BODY))
    assert json.loads(answer["body"].read())["content"][0]["text"] == "2"
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "20"
    delta.expect_usage(identity=ALICE, provider=PROVIDER, model=MODEL, endpoint=ENDPOINT, usage=Usage(20, 5))

    delta = tailmeter_metering.metrics.delta()
    streamed = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(BODY))
    events = [json.loads(event["chunk"]["bytes"]) for event in streamed["body"]]
    assert [e["type"] for e in events][-2:] == ["message_delta", "message_stop"]
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 5
    delta.expect_usage(identity=ALICE, provider=PROVIDER, model=MODEL, endpoint=ENDPOINT, usage=Usage(20, 5))


def test_boto3_count_tokens_is_passed_on_not_metered(
    tailmeter_metering: Tailmeter, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CountTokens (`/model/{model}/count-tokens`, which Claude Code's Bedrock mode has) reaches
    the provider with its key; no tokens are counted, the request is, as `count_tokens`."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", CLIENT_KEY)
    marker = new_marker()
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=tailmeter_metering.base_url,
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
    )
    client.meta.events.register("before-send.*", lambda request, **_: request.headers.update(marker))
    delta = tailmeter_metering.metrics.delta()
    counted = client.count_tokens(modelId=MODEL, input={"invokeModel": {"body": json.dumps(BODY)}})
    assert counted["inputTokens"] == 20
    who = {"identity": ALICE, "provider": PROVIDER, "model": MODEL}
    delta.expect([Expect("tailmeter_tokens_total", {**who, "type": t}, 0) for t in TOKEN_TYPES]
                 + [Expect("tailmeter_requests_total", {**who, "endpoint": ENDPOINT}, 0),
                    Expect("tailmeter_requests_total", {**who, "endpoint": "count_tokens", "code": "200"}, 1)])
    upstream = sim.one(marker)
    assert upstream.target == f"{PATH}/count-tokens", upstream.target
    assert upstream.header("authorization") == [f"Bearer {PROVIDER_BEDROCK_KEY}"]


def test_boto3_reads_a_refusal_as_its_own_error(tailmeter_metering: Tailmeter, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model the gateway does not serve, asked for through the AWS SDK: botocore raises its
    ClientError with Bedrock's code (ResourceNotFoundException), the 404, and tailmeter's message
    naming the model."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", CLIENT_KEY)
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=tailmeter_metering.base_url,
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
    )
    with pytest.raises(ClientError) as refused:
        client.invoke_model(modelId="us.anthropic.claude-nope-v1:0", body=json.dumps(BODY))
    error = refused.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException", error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404, error
    assert "us.anthropic.claude-nope-v1:0" in error["Error"]["Message"], error
    assert error["ResponseMetadata"]["HTTPHeaders"].get(REQUEST_ID), error


def test_cut_invoke_stream_is_counted_once(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    """Cuts inside frames and on frame boundaries: the provider's figures from the end of the
    `message_delta` frame on (the model's own final usage, equal to Bedrock's metrics), an
    estimate before it; one row and one request each, tokens moved by exactly the rows."""
    body = direct(sim, "invoke-with-response-stream").content
    frames = chunks(body)
    complete_from = next(end for end, event in frames if event["type"] == "message_delta")
    rng = random.Random(f"{SEED}-invoke")
    cuts = sorted({rng.randrange(1, len(body)) for _ in range(3)}
                  | {frames[0][0], complete_from - 1, complete_from, len(body) - 1})
    stream = Stream("invoke", f"{PATH}/invoke-with-response-stream", BODY, CLIENT_AUTH, {},
                    PROVIDER, MODEL, ENDPOINT, Usage(20, 5), b"")
    assert_cuts_counted_once(tailmeter_metering, stream, cuts, complete_from)

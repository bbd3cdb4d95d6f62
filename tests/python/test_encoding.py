"""Compressed responses: a client that accepts gzip and br still gets a valid response it can
read, and its usage is still counted (tailmeter asks the provider for an identity-encoded body,
so the usage tap can read it, and passes that body on)."""

from __future__ import annotations

import json

import pytest

from harness import expected
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client
from harness.config import ALICE, SRC_ALICE
from harness.sim import Sim, new_marker
from harness.sse import json_payloads

ACCEPT = "gzip, deflate, br, zstd"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_client_accepting_compression_gets_a_readable_response_and_is_metered(
    tailmeter: Tailmeter, sim: Sim, stream: bool
) -> None:
    delta = tailmeter.metrics.delta()
    marker = new_marker()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    headers = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "accept-encoding": ACCEPT, **marker}
    with http_client(SRC_ALICE) as http:
        resp = http.post(f"{tailmeter.base_url}/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    encoding = resp.headers.get("content-encoding", "identity")
    assert encoding in ("identity", "gzip", "br", "deflate", "zstd"), encoding
    if stream:
        chunks = json_payloads(resp.content)
        assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
        usage = expected.CHAT_STREAM
    else:
        assert json.loads(resp.content)["object"] == "chat.completion"
        usage = expected.CHAT_NONSTREAM
    upstream = sim.one(marker)
    assert upstream.header("accept-encoding") == ["identity"], upstream.headers
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=usage
    )

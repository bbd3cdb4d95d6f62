"""Who a request is attributed to: static identities by source address, tag
series for tagged callers, `/tailmeter/whoami`, and a spoofed
`Tailscale-User-Login` header (ignored: `trust_serve_headers` is off).
"""

from __future__ import annotations

import pytest

from harness import expected
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client, openai_client
from harness.config import ALICE, CI_K8S, GRANTED, K8S, SRC_ALICE, SRC_CI, SRC_K8S
from harness.metrics import TOKEN_TYPES, Expect

MESSAGES = [{"role": "user", "content": "hi"}]


def test_tagged_caller_counts_once_per_tag(tailmeter: Tailmeter) -> None:
    delta = tailmeter.metrics.delta()
    stream = openai_client(tailmeter, SRC_CI).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    list(stream)
    usage = expected.CHAT_STREAM
    delta.expect_usage(identity=CI_K8S, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=usage)
    delta.expect([
        Expect("tailmeter_tag_tokens_total", {"tag": tag, "provider": "openai", "model": "gpt-4o", "type": t}, n)
        for tag in ("tag:ci", "tag:k8s")
        for t, n in usage.by_type().items()
    ])


def test_spoofed_tailscale_login_header_is_ignored(tailmeter: Tailmeter) -> None:
    delta = tailmeter.metrics.delta()
    client = openai_client(tailmeter, SRC_ALICE)
    client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"Tailscale-User-Login": "mallory@example.com"}
    )
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=expected.CHAT_NONSTREAM
    )
    assert delta.now("tailmeter_requests_total", identity="mallory@example.com") == 0
    for t in TOKEN_TYPES:
        assert delta.now("tailmeter_tokens_total", identity="mallory@example.com", type=t) == 0


@pytest.mark.parametrize("src,identity", [(SRC_ALICE, ALICE), (SRC_K8S, K8S), (SRC_CI, CI_K8S)])
def test_whoami(tailmeter: Tailmeter, src: str, identity: str) -> None:
    with http_client(src) as http:
        resp = http.get(f"{tailmeter.base_url}/tailmeter/whoami", headers={"authorization": f"Bearer {CLIENT_OPENAI_KEY}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.get("identity") == identity, body
    for model in GRANTED[identity]:
        assert model in resp.text, f"granted model {model} missing from whoami: {body}"

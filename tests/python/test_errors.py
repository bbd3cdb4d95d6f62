"""Refusals and upstream failures, with plain HTTP.

Each error must come in the endpoint's own format (OpenAI `{"error":{…}}` on
/v1/chat/completions, Anthropic `{"type":"error","error":{…}}` on
/v1/messages), be counted in tailmeter_requests_total with its code, and
leave tailmeter healthy (checked after every test).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from harness.clients import CLIENT_ANTHROPIC_KEY, CLIENT_OPENAI_KEY, REQUEST_ID, Tailmeter, http_client
from harness.config import (
    ALICE, CI_K8S, FAULT_CONNECT_TIMEOUT_S, FAULTS, LIMITS_MAX_BODY, SRC_ALICE, SRC_CI, SRC_UNKNOWN, fault_model,
)
from harness.metrics import Expect
from harness.sim import Sim, new_marker
from harness.sse import events


def openai_error(resp: httpx2.Response) -> str:
    """The message of an OpenAI-format error body."""
    body = resp.json()
    assert isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("message"), str), body
    return body["error"]["message"]


def anthropic_error(resp: httpx2.Response) -> str:
    """The message of an Anthropic-format error body."""
    body = resp.json()
    assert body.get("type") == "error" and isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("type"), str), body
    assert isinstance(body["error"].get("message"), str), body
    return body["error"]["message"]


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: path, label, client credentials, error format, and a model to ask for."""

    path: str
    label: str
    headers: dict[str, str]
    error: Callable[[httpx2.Response], str]
    model: str
    ungranted: str

    def body(self, model: str | None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, **extra}
        if model is not None:
            body["model"] = model
        return body


CHAT = Endpoint(
    "/v1/chat/completions", "chat_completions",
    {"authorization": f"Bearer {CLIENT_OPENAI_KEY}"}, openai_error, "gpt-4o", "gpt-5-nano",
)
MESSAGES = Endpoint(
    "/v1/messages", "messages",
    {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}, anthropic_error,
    "claude-sonnet-4-5", "claude-haiku-4-5",
)
BOTH = pytest.mark.parametrize("ep", [CHAT, MESSAGES], ids=["openai", "anthropic"])


def send(
    tm: Tailmeter, ep: Endpoint, src: str = SRC_ALICE, *, body: Any = None, raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **ep.headers, **(headers or {})}
    with http_client(src) as http:
        return http.post(f"{tm.base_url}{ep.path}", content=content, headers=all_headers)


@pytest.fixture(autouse=True)
def still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, every tailmeter instance it used still answers /healthz."""
    yield
    for name in ("tailmeter", "tailmeter_limits"):
        if name in request.fixturenames:
            tm: Tailmeter = request.getfixturevalue(name)
            assert tm.proc.alive(), tm.proc.describe_failure("died")
            assert tm.healthz() == 200


def counted(ep: Endpoint, code: int, **labels: str) -> Expect:
    return Expect("tailmeter_requests_total", {"endpoint": ep.label, "code": str(code), **labels}, 1)


@BOTH
def test_missing_model_is_400(tailmeter: Tailmeter, ep: Endpoint) -> None:
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, body=ep.body(None))
    assert resp.status_code == 400, resp.text
    ep.error(resp)
    delta.expect([counted(ep, 400, identity=ALICE)])


@BOTH
def test_non_json_body_is_400(tailmeter: Tailmeter, ep: Endpoint) -> None:
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, raw=b"this is {not json")
    assert resp.status_code == 400, resp.text
    ep.error(resp)
    delta.expect([counted(ep, 400, identity=ALICE)])


@BOTH
def test_unknown_model_is_404(tailmeter: Tailmeter, sim: Sim, ep: Endpoint) -> None:
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, body=ep.body("no-such-model-e2e"), headers=marker)
    assert resp.status_code == 404, resp.text
    message = ep.error(resp)
    assert "no-such-model-e2e" in message and ALICE in message, message
    delta.expect([counted(ep, 404, identity=ALICE, model="__unknown__")])
    assert delta.now("tailmeter_requests_total", model="no-such-model-e2e") == 0, "client string became a label"
    assert sim.find(marker, expect=0) == []


@BOTH
def test_model_not_granted_is_403(tailmeter: Tailmeter, sim: Sim, ep: Endpoint) -> None:
    """127.0.0.3 is `tag:ci,tag:k8s`, granted only openai/gpt-4o: the message says so."""
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, SRC_CI, body=ep.body(ep.ungranted), headers=marker)
    assert resp.status_code == 403, resp.text
    message = ep.error(resp)
    for part in (ep.ungranted, CI_K8S, "gpt-4o"):
        assert part in message, f"{part!r} not in 403 message: {message!r}"
    delta.expect([counted(ep, 403, identity=CI_K8S, model=ep.ungranted)])
    assert sim.find(marker, expect=0) == []


@BOTH
def test_unidentified_caller_is_403(tailmeter: Tailmeter, sim: Sim, ep: Endpoint) -> None:
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, SRC_UNKNOWN, body=ep.body(ep.model), headers=marker)
    assert resp.status_code == 403, resp.text
    ep.error(resp)
    delta.expect([counted(ep, 403, identity="__unidentified__")])
    assert sim.find(marker, expect=0) == []


@BOTH
def test_body_over_limit_is_413(tailmeter_limits: Tailmeter, sim: Sim, ep: Endpoint) -> None:
    marker = new_marker()
    delta = tailmeter_limits.metrics.delta()
    big = ep.body(ep.model, padding="x" * (2 * LIMITS_MAX_BODY))
    resp = send(tailmeter_limits, ep, body=big, headers=marker)
    assert resp.status_code == 413, resp.text
    ep.error(resp)
    delta.expect([counted(ep, 413, identity=ALICE)])
    assert sim.find(marker, expect=0) == []


# How each unreachable provider (harness.unreachable) is answered: status, the code an
# OpenAI-format error carries, and the reason its message gives.
UNREACHABLE = {
    "dead": (502, "upstream_unreachable", "ConnectRefused"),
    "nodns": (502, "upstream_unreachable", "lookup"),
    "notls": (502, "upstream_tls_failed", "received corrupt message"),
    "selfsigned": (502, "upstream_tls_failed", "invalid peer certificate"),
    "blackhole": (504, "upstream_connect_timeout", "ConnectTimedout"),
}


@BOTH
@pytest.mark.parametrize("fault", FAULTS)
def test_unreachable_provider_is_answered_in_the_callers_format(
    tailmeter_limits: Tailmeter, ep: Endpoint, fault: str
) -> None:
    """A closed port, a host name that does not resolve, an https base_url at a plain-HTTP
    server, a certificate no one trusts, a connect that never completes: each is a 502 or 504 in the endpoint's own format, naming the
    provider and the reason (the TLS library's, for TLS), with a request id, counted under the provider and model, and (for the connect that
    never completes) no longer than the provider's connect_timeout allows."""
    kind = "openai" if ep is CHAT else "anthropic"
    provider, model = f"{fault}-{kind}", fault_model(kind, fault)
    status, code, reason = UNREACHABLE[fault]
    delta = tailmeter_limits.metrics.delta()
    started = time.monotonic()
    resp = send(tailmeter_limits, ep, body=ep.body(model))
    took = time.monotonic() - started
    assert resp.status_code == status, resp.text
    assert resp.headers.get(REQUEST_ID)
    message = ep.error(resp)
    assert f"provider {provider} (" in message and reason in message, message
    if ep is CHAT:
        assert resp.json()["error"]["code"] == code, resp.text
    else:
        assert resp.json()["error"]["type"] == "api_error", resp.text
    if fault == "blackhole":
        # TCP, then TCP with TLS: Pingora's two deadlines are connect_timeout and twice it.
        assert FAULT_CONNECT_TIMEOUT_S * 0.9 <= took < FAULT_CONNECT_TIMEOUT_S * 2 + 3, f"answered after {took:.1f}s"
    delta.expect([counted(ep, status, identity=ALICE, provider=provider, model=model)])


@BOTH
def test_model_of_another_api_is_404(tailmeter: Tailmeter, sim: Sim, ep: Endpoint) -> None:
    """An Anthropic model asked for on /v1/chat/completions, or an OpenAI one on /v1/messages:
    refused before anything reaches a provider, in the endpoint's own format, naming the model,
    its provider and API, the caller, and the models this endpoint can reach."""
    other = MESSAGES.model if ep is CHAT else CHAT.model
    provider = "anthropic" if ep is CHAT else "openai"
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, body=ep.body(other), headers=marker)
    assert resp.status_code == 404, resp.text
    assert resp.headers.get(REQUEST_ID)
    message = ep.error(resp)
    for part in (other, f"provider {provider} ({provider} API)", f"this endpoint ({ep.label})", ALICE,
                 "models you may use", ep.model):
        assert part in message, f"{part!r} not in: {message!r}"
    if ep is CHAT:
        assert resp.json()["error"]["code"] == "model_not_on_endpoint", resp.text
    else:
        assert resp.json()["error"]["type"] == "not_found_error", resp.text
    delta.expect([counted(ep, 404, identity=ALICE, provider=provider, model=other)])
    assert sim.find(marker, expect=0) == []


@BOTH
def test_upstream_500_passes_through(tailmeter: Tailmeter, sim: Sim, ep: Endpoint) -> None:
    fault = {"x-sim-fault": "status=500"}
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, ep, body=ep.body(ep.model), headers=fault)
    assert resp.status_code == 500, resp.text
    assert resp.headers.get(REQUEST_ID)
    provider_key = {"authorization": f"Bearer {sim.openai_key}"} if ep is CHAT else {"x-api-key": sim.anthropic_key}
    direct = sim.post_direct(
        ep.path, json.dumps(ep.body(ep.model)).encode(), {"content-type": "application/json", **provider_key, **fault}
    )
    assert resp.content == direct.content, "the provider's 500 body did not pass through unchanged"
    delta.expect([counted(ep, 500, identity=ALICE, model=ep.model)])


def test_error_event_mid_stream(tailmeter: Tailmeter) -> None:
    """Anthropic's `event: error` inside a 200 stream: the client gets it and the stream ends; counted."""
    delta = tailmeter.metrics.delta()
    resp = send(tailmeter, MESSAGES, body=MESSAGES.body(MESSAGES.model, stream=True),
                headers={"x-sim-fault": "error-event"})
    assert resp.status_code == 200, resp.text
    names = [e.name for e in events(resp.content)]
    assert names and names[-1] == "error", names
    assert "message_stop" not in names
    who = {"identity": ALICE, "provider": "anthropic", "model": MESSAGES.model}
    delta.expect([Expect("tailmeter_requests_total", {**who, "endpoint": "messages"}, 1)])


def test_stream_cut_by_upstream_is_still_counted(tailmeter: Tailmeter) -> None:
    """Upstream drops the connection mid-stream: the request is recorded anyway, usage marked missing."""
    delta = tailmeter.metrics.delta()
    body = CHAT.body(CHAT.model, stream=True, stream_options={"include_usage": True})
    try:
        resp = send(tailmeter, CHAT, body=body, headers={"x-sim-fault": "cut-after=600"})
        received = resp.content
    except httpx2.TransportError:
        received = b""
    assert b"[DONE]" not in received
    who = {"identity": ALICE, "provider": "openai", "model": CHAT.model}
    delta.expect([
        Expect("tailmeter_requests_total", {**who, "endpoint": "chat_completions"}, 1),
        Expect("tailmeter_usage_missing_total", {"provider": "openai", "endpoint": "chat_completions"}, 1),
    ])

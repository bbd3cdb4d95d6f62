"""Providers over HTTPS, the way every real provider is reached: tailmeter in front of a TLS edge
(harness.tls_front: nginx with a certificate for `localhost` from a private CA, trusted through
`SSL_CERT_FILE`), the simulator behind it.

Every other suite reaches its providers over plain HTTP, and the TLS tests elsewhere only see
handshakes fail. Here they succeed, and the edge's log shows what crossed the wire: the host
name sent as SNI and verified against the certificate, HTTP/1.1 or HTTP/2 as the provider's
`http2` key asks and ALPN settles, one TLS connection kept for the requests that follow (a
handshake per request would cost each call a round trip or two to the real provider), and the
provider's key in place of the client's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from conftest import PROVIDER_ANTHROPIC_KEY, PROVIDER_OPENAI_KEY
from harness import config as cfg
from harness import events as ev
from harness import tls_front
from harness.clients import Tailmeter, http_client
from harness.metrics import Expect
from harness.procs import free_port, start_tailmeter
from harness.sim import Sim

# gpt-4o: the model the rendered config prices.
H1_MODEL, H2_MODEL, ANTHROPIC_MODEL = "gpt-4o", "gpt-edge-h2", "claude-edge"
MESSAGES = {"model": ANTHROPIC_MODEL, "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def edge(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tls_front.TlsFront]:
    missing = tls_front.available()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    with tls_front.tls_front(tmp_path_factory.mktemp("tls-edge"), f"127.0.0.1:{sim.port}") as front:
        yield front


@pytest.fixture(scope="module")
def tm(binaries: dict[str, Path], edge: tls_front.TlsFront, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    workdir = tmp_path_factory.mktemp("tailmeter-tls")
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    openai_key, anthropic_key = f"${{{cfg.OPENAI_KEY_ENV}}}", f"${{{cfg.ANTHROPIC_KEY_ENV}}}"
    providers = [
        cfg.Provider("edge-openai", "openai", edge.base_url, openai_key, [H1_MODEL]),
        cfg.Provider("edge-h2-openai", "openai", edge.base_url, openai_key, [H2_MODEL], http2=True),
        cfg.Provider("edge-anthropic", "anthropic", edge.base_url, anthropic_key, [ANTHROPIC_MODEL]),
    ]
    (workdir / "tailmeter.toml").write_text(cfg.render(cfg.TailmeterConfig(listen, admin, providers)))
    env = {cfg.OPENAI_KEY_ENV: PROVIDER_OPENAI_KEY, cfg.ANTHROPIC_KEY_ENV: PROVIDER_ANTHROPIC_KEY,
           "SSL_CERT_FILE": str(edge.ca_bundle)}
    proc = start_tailmeter(binaries["tailmeter"], workdir / "tailmeter.toml", workdir, env, ready_at=admin)
    yield Tailmeter(proc, listen, admin)
    proc.stop()


def requests_for(edge: tls_front.TlsFront, path: str, since: int) -> list[dict]:
    return [r for r in edge.requests()[since:] if r["uri"].startswith(path)]


def on_one_connection(edge: tls_front.TlsFront, since: int, count: int, protocol: str) -> list[dict]:
    """The edge's last `count` chat requests, checked: all answered 200 over `protocol` with SNI
    `localhost`, all on one TLS connection."""
    seen = requests_for(edge, "/v1/chat/completions", since)
    assert len(seen) == count, seen
    assert {(r["protocol"], r["sni"], r["status"]) for r in seen} == {(protocol, "localhost", 200)}, seen
    assert len({r["connection"] for r in seen}) == 1, f"a TLS handshake per request: {seen}"
    return seen


def counted(provider: str, model: str, endpoint: str, n: int) -> Expect:
    labels = {"identity": cfg.ALICE, "provider": provider, "model": model, "endpoint": endpoint, "code": "200"}
    return Expect("tailmeter_requests_total", labels, n)


def test_http1_provider_over_tls_keeps_one_connection(tm: Tailmeter, edge: tls_front.TlsFront) -> None:
    """Three calls and a stream on HTTP/1.1 over TLS: answered and metered, SNI `localhost`, one
    TLS connection for all four, the provider's key on each."""
    delta, since = tm.metrics.delta(), len(edge.requests())
    with http_client(cfg.SRC_ALICE) as http:
        for _ in range(3):
            resp = ev.chat(http, tm, {**ev.CHAT, "model": H1_MODEL})
            assert resp.status_code == 200, resp.text
            assert resp.json()["usage"]["total_tokens"] > 0
        streamed = ev.chat(http, tm, {**ev.CHAT, "model": H1_MODEL, "stream": True})
        assert streamed.status_code == 200 and b"data: [DONE]" in streamed.content, streamed.text
    seen = on_one_connection(edge, since, 4, "HTTP/1.1")
    assert {r["authorization"] for r in seen} == {f"Bearer {PROVIDER_OPENAI_KEY}"}, seen
    delta.expect([counted("edge-openai", H1_MODEL, "chat_completions", 4)])
    assert tm.metrics.value("tailmeter_tokens_total", provider="edge-openai", type="output") > 0


def test_http2_provider_over_tls_is_spoken_http2_on_one_connection(tm: Tailmeter, edge: tls_front.TlsFront) -> None:
    """`http2 = true`: ALPN settles on h2; three streams, answered to their end and metered, on
    one connection."""
    delta, since = tm.metrics.delta(), len(edge.requests())
    with http_client(cfg.SRC_ALICE) as http:
        for _ in range(3):
            resp = ev.chat(http, tm, {**ev.CHAT, "model": H2_MODEL, "stream": True})
            assert resp.status_code == 200 and b"data: [DONE]" in resp.content, resp.text
    on_one_connection(edge, since, 3, "HTTP/2.0")
    delta.expect([counted("edge-h2-openai", H2_MODEL, "chat_completions", 3)])


def test_anthropic_stream_over_tls_carries_the_providers_key(tm: Tailmeter, edge: tls_front.TlsFront) -> None:
    """A Messages stream over TLS: read to `message_stop`, metered, the provider's `x-api-key`
    sent and the client's nowhere."""
    delta, since = tm.metrics.delta(), len(edge.requests())
    with http_client(cfg.SRC_ALICE) as http:
        resp = http.post(f"{tm.base_url}/v1/messages", json=MESSAGES, headers=ev.ANTHROPIC_HEADERS)
    assert resp.status_code == 200 and b"message_stop" in resp.content, resp.text
    [seen] = requests_for(edge, "/v1/messages", since)
    assert (seen["sni"], seen["x_api_key"], seen["authorization"]) == ("localhost", PROVIDER_ANTHROPIC_KEY, ""), seen
    delta.expect([counted("edge-anthropic", ANTHROPIC_MODEL, "messages", 1)])
    assert tm.metrics.value("tailmeter_tokens_total", provider="edge-anthropic", type="input") > 0


def test_the_edge_is_untrusted_without_the_ca(edge: tls_front.TlsFront) -> None:
    """The control: the edge's certificate is the private CA's, not one the system trusts (so the
    tests above pass because tailmeter verified it against SSL_CERT_FILE)."""
    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx2.get(edge.base_url, verify=True)

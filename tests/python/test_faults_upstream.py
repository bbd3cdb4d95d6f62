"""Broken providers (issue 9, "Upstream faults"), through the simulator's `x-sim-fault` switches.

Each fault must reach the client as a well-formed answer in its own dialect, be metered with its
status (and, for a stream cut short, its reason), and leak nothing: tailmeter's open descriptors,
threads and memory come back to their level before a burst of faulted requests. Covered
elsewhere and not repeated here: connection refused → 502 and a 500 passing through unchanged
(test_errors.py), a stream cut mid-way, an error event in a 200 stream and an idle stream past
its `idle_timeout` (test_stream_endings.py).

A private instance (`tailmeter_timeouts`) has short timeouts: a provider whose `first_byte_timeout`
(1 s) is shorter than its `idle_timeout` (4 s), and `server.client_header_timeout` (1 s), whose
slowloris tests live here too since they share it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from harness import config as cfg
from harness.clients import CLIENT_ANTHROPIC_KEY, CLIENT_OPENAI_KEY, REQUEST_ID, Tailmeter, http_client
from harness import events as ev
from harness import leaks
from harness.events import wait_for
from harness.metrics import Expect
from harness.procs import free_port, start_tailmeter
from harness.sim import Sim, new_marker

OPENAI = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}"}
ANTHROPIC = {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
# The private instance `tailmeter_timeouts` (below).
FIRST_BYTE_MODEL = "gpt-4o-first-byte"
FIRST_BYTE_S = 1
IDLE_S = 4
HEADER_TIMEOUT_S = 1


def chat(tm: Tailmeter, fault: str, body: dict | None = None, timeout: float = 30.0) -> httpx2.Response:
    with http_client(cfg.SRC_ALICE, timeout=timeout) as http:
        return http.post(f"{tm.base_url}/v1/chat/completions", json=body or CHAT, headers={**OPENAI, "x-sim-fault": fault})


def messages(tm: Tailmeter, fault: str, body: dict | None = None) -> httpx2.Response:
    with http_client(cfg.SRC_ALICE) as http:
        return http.post(f"{tm.base_url}/v1/messages", json=body or MESSAGES, headers={**ANTHROPIC, "x-sim-fault": fault})


def counted(provider: str, model: str, endpoint: str, code: int) -> Expect:
    labels = {"identity": cfg.ALICE, "provider": provider, "model": model, "endpoint": endpoint, "code": str(code)}
    return Expect("tailmeter_requests_total", labels, 1)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_openai_status_passes_through_with_its_retry_after(tailmeter: Tailmeter, status: int) -> None:
    delta = tailmeter.metrics.delta()
    resp = chat(tailmeter, f"status={status}")
    assert resp.status_code == status, resp.text
    assert isinstance(resp.json().get("error"), dict), resp.text
    assert resp.headers.get(REQUEST_ID)
    # The simulator sends `retry-after: 1` with its 429s only; it must reach the client as sent.
    assert resp.headers.get("retry-after") == ("1" if status == 429 else None), resp.headers
    delta.expect([counted("openai", "gpt-4o", "chat_completions", status)])


@pytest.mark.parametrize("status", [429, 529])
def test_anthropic_status_passes_through_with_its_retry_after(tailmeter: Tailmeter, status: int) -> None:
    delta = tailmeter.metrics.delta()
    resp = messages(tailmeter, f"status={status}")
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body.get("type") == "error" and isinstance(body.get("error"), dict), body
    assert resp.headers.get("retry-after") == ("1" if status == 429 else None), resp.headers
    delta.expect([counted("anthropic", "claude-haiku-4-5", "messages", status)])


def test_stall_before_headers_past_the_timeout_is_504(tailmeter_metering: Tailmeter) -> None:
    """No response headers within the provider's timeout (1 s here): 504 in OpenAI's format,
    within a bounded time, metered as a 504."""
    tm = tailmeter_metering
    delta = tm.metrics.delta()
    started = time.monotonic()
    resp = chat(tm, "stall-ms=4000", {**CHAT, "model": cfg.IDLE_MODEL})
    elapsed = time.monotonic() - started
    assert resp.status_code == 504, resp.text
    error = resp.json()["error"]
    # The provider sets only idle_timeout, which first_byte_timeout then equals.
    assert error["code"] == "upstream_first_byte_timeout" and error["type"] == "server_error", error
    assert "first_byte_timeout (1s)" in error["message"], error
    assert cfg.IDLE_TIMEOUT_S * 0.9 <= elapsed < cfg.IDLE_TIMEOUT_S + 2.5, elapsed
    delta.expect([counted("idle", cfg.IDLE_MODEL, "chat_completions", 504)])


def _connections(tm: Tailmeter, sim: Sim, model: str, faults: list[str]) -> list[str]:
    """Sends one chat request per entry of `faults` (its `x-sim-fault`, or none), one after
    another on one client connection; returns the provider connection each came over."""
    marker = new_marker()
    with http_client(cfg.SRC_ALICE) as http:
        for fault in faults:
            headers = {**OPENAI, **marker, **({"x-sim-fault": fault} if fault else {})}
            resp = http.post(f"{tm.base_url}/v1/chat/completions", json={**CHAT, "model": model}, headers=headers)
            assert resp.status_code == 200, resp.text
            if "close-after-ms" in fault:
                time.sleep(0.5)  # the provider closes the connection meanwhile
    peers = [r.raw["peer"] for r in sim.find(marker, expect=len(faults))]
    assert len(peers) == len(faults) and all(peers), f"the simulator must log each request's connection: {peers}"
    return peers


# Two ways to the provider: Pingora's own connector (one timeout), and tailmeter's socket keeping
# first_byte_timeout apart from idle_timeout (crate::timeouts::upstream).
CONNECTORS = [("tailmeter", "gpt-4o"), ("tailmeter_timeouts", FIRST_BYTE_MODEL)]


@pytest.mark.parametrize(("instance", "model"), CONNECTORS)
def test_provider_connections_are_reused(request: pytest.FixtureRequest, sim: Sim, instance: str, model: str) -> None:
    """Sequential requests to a provider share a pooled connection: a new one per request
    would cost every TLS provider a handshake (the simulator logs each request's connection)."""
    peers = _connections(request.getfixturevalue(instance), sim, model, [""] * 20)
    assert len(set(peers)) <= 2, f"20 requests came over {len(set(peers))} connections"


@pytest.mark.parametrize(("instance", "model"), CONNECTORS)
def test_a_pooled_connection_the_provider_closed_is_not_used(
    request: pytest.FixtureRequest, sim: Sim, instance: str, model: str
) -> None:
    """A provider ends a connection it has kept idle for a while (its keep-alive timeout): the
    next request goes over another connection and is answered, not failed (a POST sent into a
    closed connection cannot be retried). The connections after it are pooled again."""
    peers = _connections(request.getfixturevalue(instance), sim, model, ["close-after-ms=100", "", "close-after-ms=100", "", ""])
    assert peers[1] != peers[0] and peers[3] != peers[2], peers
    assert peers[4] == peers[3], f"the connection after a closed one is pooled again: {peers}"


def _closing_to(port: int) -> int:
    """Sockets on this machine in CLOSE_WAIT towards `port`: closed by that end, not yet by ours."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "08" and int(fields[2].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def test_an_idle_connection_the_provider_closed_is_closed_without_traffic(tailmeter: Tailmeter, sim: Sim) -> None:
    """A connection the provider closes while tailmeter keeps it idle is closed on tailmeter's
    side within seconds even when no request comes to find it closed (no socket left in
    CLOSE_WAIT)."""
    port = int(sim.base_url.rsplit(":", 1)[1].rstrip("/"))
    _connections(tailmeter, sim, "gpt-4o", ["close-after-ms=100"])
    wait_for("tailmeter to close its end of the closed connection", lambda: _closing_to(port) == 0, 15)


def test_stall_under_the_timeout_is_served(tailmeter_metering: Tailmeter) -> None:
    resp = chat(tailmeter_metering, "stall-ms=300", {**CHAT, "model": cfg.IDLE_MODEL})
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] > 0


def _hang_up(tm: Tailmeter) -> None:
    host, port = tm.listen.rsplit(":", 1)
    body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_OPENAI_KEY}\r\n"
        f"x-sim-fault: chunk-bytes=8,chunk-delay-ms=40\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10, source_address=(cfg.SRC_ALICE, 0)) as sock:
        sock.sendall(head + body)
        sock.recv(64)


def _burst(tm: Tailmeter) -> None:
    """Every fault, twice over, from four threads at once."""
    stream = {**CHAT, "stream": True}

    def tolerant(call: Callable[[], httpx2.Response | None]) -> Callable[[], None]:
        def run() -> None:
            try:
                resp = call()
            except httpx2.TransportError:
                return  # a cut stream may surface as a transport error; that is the fault working
            assert resp is None or resp.status_code in (200, 429, 500, 503, 504), resp.status_code
        return run

    leaks.burst([tolerant(call) for call in (
        lambda: chat(tm, "status=429"),
        lambda: chat(tm, "status=500"),
        lambda: chat(tm, "cut-after=300", stream),
        lambda: chat(tm, "error-event", stream),
        lambda: chat(tm, "stall-ms=2500", {**CHAT, "model": cfg.IDLE_MODEL}),
        lambda: chat(tm, "chunk-delay-ms=1500", {**stream, "model": cfg.IDLE_MODEL}),
        lambda: messages(tm, "status=503"),
        lambda: messages(tm, "error-event", {**MESSAGES, "stream": True}),
        lambda: _hang_up(tm),
    )])


def test_faults_leak_no_descriptors_threads_or_memory(tailmeter_metering: Tailmeter) -> None:
    leaks.assert_no_leak(tailmeter_metering, lambda: _burst(tailmeter_metering), max_rss_growth_kib=32 * 1024)



@pytest.fixture(scope="module")
def tailmeter_timeouts(binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    """A private instance: provider `first-byte` waits 1 s for a response header but 4 s between
    pieces; every client has 1 s to send a request header."""
    workdir = tmp_path_factory.mktemp("tailmeter-timeouts")
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    provider = cfg.Provider("first-byte", "openai", sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}", [FIRST_BYTE_MODEL], f"{IDLE_S}s")
    text = cfg.render(cfg.TailmeterConfig(listen, admin, cfg.standard_providers(sim.base_url) + [provider]))
    text = text.replace(f'idle_timeout = "{IDLE_S}s"\n', f'idle_timeout = "{IDLE_S}s"\nfirst_byte_timeout = "{FIRST_BYTE_S}s"\n', 1)
    text = text.replace("[server]\n", f'[server]\nclient_header_timeout = "{HEADER_TIMEOUT_S}s"\n', 1)
    (workdir / "tailmeter.toml").write_text(text)
    proc = start_tailmeter(binaries["tailmeter"], workdir / "tailmeter.toml", workdir, ev.PROVIDER_ENV, ready_at=admin)
    yield Tailmeter(proc, listen, admin)
    proc.stop()


def test_stall_before_headers_past_first_byte_timeout_is_504_despite_a_long_idle_timeout(
    tailmeter_timeouts: Tailmeter,
) -> None:
    tm = tailmeter_timeouts
    delta = tm.metrics.delta()
    started = time.monotonic()
    resp = chat(tm, "stall-ms=3500", {**CHAT, "model": FIRST_BYTE_MODEL})
    elapsed = time.monotonic() - started
    assert resp.status_code == 504, resp.text
    error = resp.json()["error"]
    assert error["code"] == "upstream_first_byte_timeout" and "first_byte_timeout" in error["message"], error
    assert FIRST_BYTE_S * 0.9 <= elapsed < FIRST_BYTE_S + 1.5, elapsed
    delta.expect([counted("first-byte", FIRST_BYTE_MODEL, "chat_completions", 504)])
    wait_for(
        "the request metered as a first-byte timeout",
        lambda: delta.now("tailmeter_usage_missing_total", reason="upstream_first_byte_timeout") >= 1, 10,
    )


def test_stream_stall_before_headers_is_504_json(tailmeter_timeouts: Tailmeter) -> None:
    """A stream request is no different before its header: 504, JSON, with a request id."""
    resp = chat(tailmeter_timeouts, "stall-ms=3000", {**CHAT, "model": FIRST_BYTE_MODEL, "stream": True})
    assert resp.status_code == 504, resp.text
    assert resp.headers.get(REQUEST_ID) and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"]["code"] == "upstream_first_byte_timeout"


def test_pauses_between_chunks_past_first_byte_timeout_are_served_whole(tailmeter_timeouts: Tailmeter) -> None:
    """Events 1.5 s apart: longer than `first_byte_timeout`, shorter than `idle_timeout`."""
    tm = tailmeter_timeouts
    delta = tm.metrics.delta()
    resp = chat(tm, "chunk-bytes=1200,chunk-delay-ms=1500", {**CHAT, "model": FIRST_BYTE_MODEL, "stream": True}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.text.rstrip().endswith("data: [DONE]"), resp.text[-200:]
    delta.expect([counted("first-byte", FIRST_BYTE_MODEL, "chat_completions", 200)])
    assert delta.now("tailmeter_usage_missing_total") == 0


def _slow_header(tm: Tailmeter, pause: float, stop: threading.Event | None = None) -> tuple[float, bytes]:
    """Sends a request header a few bytes at a time, `pause` apart, never finishing it; returns
    how long until tailmeter answered or closed, and what it sent."""
    host, port = tm.listen.rsplit(":", 1)
    piece = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_OPENAI_KEY}\r\nX-Pad: ".encode()
    with socket.create_connection((host, int(port)), timeout=10, source_address=(cfg.SRC_ALICE, 0)) as sock:
        started = time.monotonic()
        sock.settimeout(pause)
        answer = b""
        for i in range(int(30 / pause)):
            if stop is not None and stop.is_set():
                break
            try:
                sock.sendall(piece[i * 4 : i * 4 + 4] if i * 4 < len(piece) else b"a")
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            answer += chunk
            if not chunk:
                break
        return time.monotonic() - started, answer


def test_slowloris_header_is_cut_with_408_within_the_timeout(tailmeter_timeouts: Tailmeter) -> None:
    """A header trickling in every 200 ms (each read well inside Pingora's per-read timeout) is
    answered 408 and closed at `client_header_timeout`."""
    tm = tailmeter_timeouts
    elapsed, answer = _slow_header(tm, 0.2)
    assert HEADER_TIMEOUT_S * 0.9 <= elapsed < HEADER_TIMEOUT_S + 1.5, elapsed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    error = json.loads(body)["error"]
    assert error["code"] == "client_header_timeout" and "client_header_timeout" in error["message"], error
    assert tm.proc.alive() and tm.healthz() == 200


def test_many_slowloris_clients_do_not_stop_normal_requests(tailmeter_timeouts: Tailmeter) -> None:
    """200 slow headers at once: normal requests are served meanwhile, each slow one is cut, and
    tailmeter's descriptors come back."""
    tm = tailmeter_timeouts
    pid = tm.proc.popen.pid
    fds0 = leaks.usage(pid).fds
    stop = threading.Event()
    results: list[tuple[float, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(_slow_header(tm, 0.1, stop)), daemon=True) for _ in range(200)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        for _ in range(5):
            started = time.monotonic()
            resp = chat(tm, "")
            assert resp.status_code == 200, resp.text
            assert time.monotonic() - started < 2.0
    finally:
        for t in threads:
            t.join(15)
        stop.set()
    assert not any(t.is_alive() for t in threads)
    assert len(results) == 200
    slow = [elapsed for elapsed, _ in results if elapsed >= HEADER_TIMEOUT_S + 3]
    assert not slow, f"{len(slow)} slow clients held on past the timeout: {max(slow)}"
    wait_for(f"descriptors back to {fds0}", lambda: leaks.usage(pid).fds <= fds0 + 8, 30, 0.5)
    assert tm.proc.alive() and tm.healthz() == 200


def test_a_normal_request_on_a_kept_alive_connection_beats_the_header_timeout(tailmeter_timeouts: Tailmeter) -> None:
    """The deadline of a later request starts at its first byte, not at accept: a connection
    idle for longer than the timeout between two requests is still served."""
    tm = tailmeter_timeouts
    with http_client(cfg.SRC_ALICE) as http:
        first = http.post(f"{tm.base_url}/v1/chat/completions", json=CHAT, headers=OPENAI)
        time.sleep(HEADER_TIMEOUT_S + 0.5)
        second = http.post(f"{tm.base_url}/v1/chat/completions", json=CHAT, headers=OPENAI)
    assert (first.status_code, second.status_code) == (200, 200), second.text

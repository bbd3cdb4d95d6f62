"""How request bodies arrive: `Expect: 100-continue` (curl sends it for large bodies and waits
for the 100 before sending), chunked transfer encoding, small and large, and compressed
(`Content-Encoding`: Codex sends zstd). tailmeter reads the whole body before routing (the model
is inside it), so it must answer the 100 itself, forward a chunked body intact, and decode a
compressed one (sending it on decoded)."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import time

import httpx2
import zstandard

from harness import events as ev
from harness import expected
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client
from harness.config import ALICE, SRC_ALICE
from harness.sim import Sim, new_marker


def _connect(tm: Tailmeter) -> socket.socket:
    host, port = tm.listen.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(SRC_ALICE, 0))
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Reads one response with a Content-Length body (tailmeter's and the simulator's JSON)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, rest
        rest += chunk
    return status, rest[:length]


def _chat_body(size: int) -> bytes:
    return json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * size}]}).encode()


def _head(marker: dict[str, str], extra: str) -> bytes:
    lines = [
        "POST /v1/chat/completions HTTP/1.1",
        "Host: gateway",
        "Content-Type: application/json",
        f"Authorization: Bearer {CLIENT_OPENAI_KEY}",
        *(f"{k}: {v}" for k, v in marker.items()),
        extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_expect_100_continue_is_answered_before_the_body(tailmeter: Tailmeter, sim: Sim) -> None:
    body = _chat_body(2 * 1024 * 1024)
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, f"Content-Length: {len(body)}\r\nExpect: 100-continue"))
        started = time.monotonic()
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        assert time.monotonic() - started < 0.5
        sock.sendall(body)
        status, payload = _read_response(sock)
    assert status == 200, payload
    upstream = sim.one(marker)
    assert upstream.body_len == len(body)
    assert upstream.header("expect") == []
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=expected.CHAT_NONSTREAM
    )


def _chunked(body: bytes, piece: int) -> bytes:
    out = b""
    for i in range(0, len(body), piece):
        part = body[i : i + piece]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def test_small_chunked_body_is_forwarded_whole(tailmeter: Tailmeter, sim: Sim) -> None:
    body = _chat_body(20 * 1024)
    marker = new_marker()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, "Transfer-Encoding: chunked") + _chunked(body, 4096))
        status, payload = _read_response(sock)
    assert status == 200, payload
    upstream = sim.one(marker)
    assert upstream.body_len == len(body)


def test_large_chunked_body_is_forwarded_whole_and_metered(tailmeter: Tailmeter, sim: Sim) -> None:
    """Several MiB sent chunked (as aiohttp streams a file it reads as it goes): read whole,
    routed, and forwarded byte for byte with a Content-Length."""
    body = _chat_body(5 * 1024 * 1024)
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, "Transfer-Encoding: chunked") + _chunked(body, 16384))
        status, payload = _read_response(sock)
    assert status == 200, payload
    upstream = sim.one(marker)
    assert (upstream.body_len, upstream.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert upstream.header("content-length") == [str(len(body))]
    assert upstream.header("transfer-encoding") == []
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=expected.CHAT_NONSTREAM
    )


def test_a_large_body_of_text_that_is_not_ascii_arrives_intact_and_metered(tailmeter: Tailmeter, sim: Sim) -> None:
    """A 3 MiB prompt sent as raw UTF-8 (Japanese, emoji, accents, escapes between them), the
    `model` after it as SDKs put it: checked span by span as UTF-8, forwarded byte for byte."""
    line = "委員会は数字を一行ずつ確認します 🦊 café \\n \\\"quoted\\\" "
    content = line * (3 * 1024 * 1024 // len(line.encode()) + 1)
    body = ('{"messages":[{"role":"user","content":"' + content + '"}],"model":"gpt-4o"}').encode()
    json.loads(body)  # well-formed, as sent
    assert len(body) > 3 * 1024 * 1024 and not body.isascii()
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, f"Content-Length: {len(body)}") + body)
        status, payload = _read_response(sock)
    assert status == 200, payload
    upstream = sim.one(marker)
    assert (upstream.body_len, upstream.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    delta.expect_usage(
        identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions", usage=expected.CHAT_NONSTREAM
    )


def _send_in_pieces(sock: socket.socket, data: bytes, cuts: list[int]) -> None:
    """Sends `data` cut at `cuts`, each piece on its own after a pause, as a slow client's
    body arrives: tailmeter checks each piece as it comes."""
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in zip(bounds, bounds[1:]):
        sock.sendall(data[start:end])
        time.sleep(0.02)


def test_a_body_arriving_in_pieces_is_checked_as_it_comes_and_forwarded_intact(tailmeter: Tailmeter, sim: Sim) -> None:
    """Pieces that end inside a four-byte character, a `\\u` escape, a member name and a
    number: the body is checked piece by piece and still forwarded byte for byte."""
    content = "Le café 🦊 \\u00e9 委員会 " * 60_000
    body = ('{"messages":[{"role":"user","content":"' + content + '"}],"temperature":0.123456,"model":"gpt-4o"}').encode()
    json.loads(body)
    cuts = [
        body.index("🦊".encode()) + 2,
        body.index(b"\\u00e9", 500_000) + 3,
        body.index("委".encode(), 900_000) + 1,
        body.index(b"temperature") + 4,
        body.index(b"0.123456") + 3,
        *range(256 * 1024, len(body), 256 * 1024),
    ]
    marker = new_marker()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, f"Content-Length: {len(body)}"))
        _send_in_pieces(sock, body, cuts)
        status, payload = _read_response(sock)
    assert status == 200, payload
    upstream = sim.one(marker)
    assert (upstream.body_len, upstream.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())


def test_a_fault_in_an_early_piece_is_reported_at_its_offset(tailmeter: Tailmeter, sim: Sim) -> None:
    """A raw control character in the first pieces of a 2 MiB body: found while the rest is
    still arriving, answered once the body is in, with its byte offset; nothing is forwarded."""
    good = ('{"messages":[{"role":"user","content":"' + "x" * (2 * 1024 * 1024) + '"}],"model":"gpt-4o"}').encode()
    at = 70_000
    body = good[:at] + b"\x01" + good[at + 1 :]
    marker = new_marker()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, f"Content-Length: {len(body)}"))
        _send_in_pieces(sock, body, list(range(64 * 1024, len(body), 128 * 1024)))
        status, payload = _read_response(sock)
    assert status == 400, payload
    error = json.loads(payload)["error"]
    assert error["code"] == "invalid_json", error
    assert f"a control character in a string at byte {at}" in error["message"], error
    assert sim.find(marker, expect=0) == []


def _post_coded(tm: Tailmeter, path: str, body: bytes, coding: str, headers: dict[str, str]) -> httpx2.Response:
    family = ev.ANTHROPIC_HEADERS if path == "/v1/messages" else ev.HEADERS
    with http_client(SRC_ALICE) as http:
        return http.post(f"{tm.base_url}{path}", content=body,
                         headers={**family, "content-encoding": coding, **headers})


def test_a_zstd_body_as_codex_sends_it_is_decoded_and_sent_on_decoded(tailmeter: Tailmeter, sim: Sim) -> None:
    """A 2 MiB Responses request in zstd, as Codex compresses its conversation: routed by its
    `model`, metered, and the provider gets the JSON itself, without the Content-Encoding."""
    history = [{"role": "user", "content": f"turn {i}: " + "the log so far " * 40} for i in range(3500)]
    body = json.dumps({"model": "gpt-5-nano", "input": history}).encode()
    assert len(body) > 2 * 1024 * 1024
    sent = zstandard.ZstdCompressor(level=3).compress(body)
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    resp = _post_coded(tailmeter, "/v1/responses", sent, "zstd", marker)
    assert resp.status_code == 200, resp.text
    upstream = sim.one(marker)
    assert (upstream.body_len, upstream.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert upstream.header("content-encoding") == [], upstream.headers
    delta.expect_usage(identity=ALICE, provider="openai", model="gpt-5-nano", endpoint="responses",
                       usage=expected.RESPONSES)


def test_a_gzip_stream_request_gets_its_usage_asked_for(tailmeter: Tailmeter, sim: Sim) -> None:
    """A streamed chat completion in gzip that does not ask for usage: decoded, asked for its
    usage like any other (`include_usage`), metered exactly; the client's stream has no usage
    chunk it did not ask for."""
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    marker = new_marker()
    delta = tailmeter.metrics.delta()
    resp = _post_coded(tailmeter, "/v1/chat/completions", gzip.compress(body), "gzip", marker)
    assert resp.status_code == 200 and b"data: [DONE]" in resp.content, resp.text
    assert b'"usage":{' not in resp.content
    upstream = sim.one(marker)
    assert upstream.header("content-encoding") == [], upstream.headers
    delta.expect_usage(identity=ALICE, provider="openai", model="gpt-4o", endpoint="chat_completions",
                       usage=expected.CHAT_STREAM)


def test_a_body_that_cannot_be_decoded_is_refused_in_the_callers_format(tailmeter: Tailmeter, sim: Sim) -> None:
    """415 for a coding tailmeter does not decode, 400 for a body its coding cannot decode, 413
    for one that decodes past max_request_body (32 MiB of zeros sent as 1 KiB of zstd); each
    in the endpoint's own error format, none sent on."""
    chat = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    messages = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 8,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
    bomb = zstandard.ZstdCompressor(level=19).compress(b'{"model":"gpt-4o","input":"' + b"0" * (33 << 20) + b'"}')
    assert len(bomb) < 8 * 1024
    marker = new_marker()
    cases = [
        ("/v1/chat/completions", chat, "compress", 415, "unsupported_encoding"),
        ("/v1/messages", gzip.compress(messages)[:-6], "gzip", 400, "invalid_encoding"),
        ("/v1/messages", messages, "zstd", 400, "invalid_encoding"),
        ("/v1/responses", bomb, "zstd", 413, "request_too_large"),
    ]
    for path, body, coding, status, code in cases:
        resp = _post_coded(tailmeter, path, body, coding, marker)
        assert resp.status_code == status, (path, coding, resp.text)
        error = resp.json()
        if path == "/v1/messages":
            assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error", error
            assert coding in error["error"]["message"], error
        else:
            assert error["error"]["code"] == code, error
    assert sim.find(marker, expect=0) == []

"""How request bodies arrive: `Expect: 100-continue` (curl sends it for large bodies and waits
for the 100 before sending), and chunked transfer encoding, small and large. tailmeter reads the
whole body before routing (the model is inside it), so it must answer the 100 itself and must
forward a chunked body intact."""

from __future__ import annotations

import hashlib
import json
import socket
import time

from harness import expected
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter
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


def test_large_chunked_body_is_refused_with_length_required(tailmeter: Tailmeter, sim: Sim) -> None:
    body = _chat_body(200 * 1024)
    marker = new_marker()
    with _connect(tailmeter) as sock:
        sock.sendall(_head(marker, "Transfer-Encoding: chunked") + _chunked(body, 16384))
        status, payload = _read_response(sock)
    assert status == 411, payload
    assert "Content-Length" in json.loads(payload)["error"]["message"]
    assert sim.find(marker, expect=0) == []


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

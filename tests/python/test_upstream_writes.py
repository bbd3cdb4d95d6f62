"""How a request reaches the provider, and a small answer the client, on the wire.

Pingora's HTTP/1 client writes a request's header and flushes it, then writes the body: two
TCP segments, and the provider woke once for each. tailmeter corks the provider socket
(`TCP_CORK`) for the header and uncorks it after the body's first write, so the header and a
small body arrive together (vendor/README.md, change 4). The other way, Pingora writes the
response header and then the body, and relies on its listener's write buffer to send them
together; tailmeter moves each client connection to the thread that serves it, which drops that
buffer, so its client wrapper keeps one (`HeaderDeadline` in `proxy/src/timeouts/client.rs`). The provider here
is a plain socket that counts, per request, the TCP segments with data it received (the kernel's
`tcpi_data_segs_in`), and answers with a recorded OpenAI chat completion; the client counts the
same on its side.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import config as cfg
from harness import events as ev
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client
from harness.procs import free_port, start_tailmeter
from harness.sim import Sim

MODEL = "gpt-4o-wire"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "openai_chat_nonstream_usage_reasoning.json"
# What a stalled, still-corked header would cost: Linux sends a corked partial segment after 200 ms.
CORK_CEILING_S = 0.2
# `struct tcp_info` (linux/tcp.h): the offset of `tcpi_data_segs_in`, and enough bytes to hold it.
DATA_SEGS_IN_AT = 152
TCP_INFO_BYTES = 160


def data_segments_in(conn: socket.socket) -> int:
    """Segments carrying data that the socket has received so far."""
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    return struct.unpack_from("I", info, DATA_SEGS_IN_AT)[0]


class WireProvider:
    """A provider that records, per request, the request and the data segments it came in."""

    def __init__(self) -> None:
        lines = FIXTURE.read_text().splitlines()
        self.answer = "\n".join(line for line in lines if not line.startswith("# source:")).encode()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[tuple[bytes, int]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            segments = 0
            while whole := conn.recv(1 << 20):
                while b"\r\n\r\n" not in whole:
                    whole += conn.recv(1 << 20)
                head, body = whole.split(b"\r\n\r\n", 1)
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(body) < length:
                    body += conn.recv(1 << 20)
                seen = data_segments_in(conn)
                self.requests.append((whole, seen - segments))
                segments = seen
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(self.answer), self.answer))

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def wire(binaries: dict[str, Path], sim: Sim, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Tailmeter, WireProvider]]:
    provider = WireProvider()
    workdir = tmp_path_factory.mktemp("tailmeter-wire")
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    wire_provider = cfg.Provider("wire", "openai", f"http://127.0.0.1:{provider.port}", f"${{{cfg.OPENAI_KEY_ENV}}}",
                                 [MODEL])
    providers = cfg.standard_providers(sim.base_url) + [wire_provider]
    (workdir / "tailmeter.toml").write_text(cfg.render(cfg.TailmeterConfig(listen, admin, providers)))
    proc = start_tailmeter(binaries["tailmeter"], workdir / "tailmeter.toml", workdir, ev.PROVIDER_ENV, ready_at=admin)
    yield Tailmeter(proc, listen, admin), provider
    proc.stop()
    provider.close()


def test_the_header_and_a_small_body_reach_the_provider_in_one_segment(wire: tuple[Tailmeter, WireProvider]) -> None:
    tm, provider = wire
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 4000}]}
    times = []
    with http_client(cfg.SRC_ALICE) as http:
        for _ in range(5):  # the first on a new connection, the rest on the pooled one
            started = time.monotonic()
            r = http.post(f"{tm.base_url}/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {CLIENT_OPENAI_KEY}"})
            times.append(time.monotonic() - started)
            assert r.status_code == 200, r.text
            assert r.json()["usage"]["completion_tokens"] == 100
    # A cork never released would hold every request until the kernel's 200 ms ceiling (the
    # median, so one request slowed by a busy machine does not count).
    assert sorted(times)[len(times) // 2] < CORK_CEILING_S, times
    assert len(provider.requests) == 5
    for whole, segments in provider.requests:
        assert segments == 1, (segments, len(whole))
        sent = json.loads(whole.split(b"\r\n\r\n", 1)[1])
        assert sent["messages"][0]["content"] == "x" * 4000


def test_a_small_answer_reaches_the_client_in_one_segment(wire: tuple[Tailmeter, WireProvider]) -> None:
    tm, _ = wire
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: tailmeter\r\n"
               b"authorization: Bearer %s\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%s" % (CLIENT_OPENAI_KEY.encode(), len(body), body))
    host, port = tm.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), source_address=(cfg.SRC_ALICE, 0), timeout=10) as conn:
        for _ in range(5):  # one connection, kept alive
            before = data_segments_in(conn)
            conn.sendall(request)
            answer = conn.recv(1 << 16)
            while b"\r\n\r\n" not in answer:
                answer += conn.recv(1 << 16)
            head, rest = answer.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(rest) < length:
                rest += conn.recv(1 << 16)
            # The premise: header and body fit in one segment's buffer (1,460 bytes).
            assert len(answer) < 1460, len(answer)
            assert json.loads(rest)["usage"]["completion_tokens"] == 100
            assert data_segments_in(conn) - before == 1, head

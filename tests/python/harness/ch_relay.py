"""A fault-injecting HTTP relay in front of the real ClickHouse server, for the faults a real
server cannot be made to show on demand: slow answers and HTTP 500s.

Every request tailmeter's ClickHouse sink sends (health check, DDL, inserts) is read whole
(Content-Length or chunked), passed to the server unchanged, and the server's answer passed
back, unless a fault is switched on:
- `delay_s`: the answer is held that long after the server gave it (the insert has landed; the
  client just waits);
- `fail_500`: while on, answers are replaced by an HTTP 500 with a plain body. With
  `forward=True` the request still reaches the server first, so the rows land and the client is
  told they did not: the retry then sends a duplicate, which must not be counted twice.

It listens on an OS-assigned loopback port, one thread per connection (keep-alive kept), and
counts what it saw. Not a fake ClickHouse: every answer that is not an injected fault comes from
the real server.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2

# Request headers not passed on: hop-by-hop, or recomputed by the relay's own client.
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length",
       "proxy-connection", "expect"}
# Reading a request body is bounded: the suite's batches are far smaller.
MAX_BODY = 64 << 20


class ClickHouseRelay:
    """The relay; `url` is what tailmeter's `[clickhouse] url` points at."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.delay_s = 0.0
        self.fail_500 = False
        self.forward_failed = False
        self.lock = threading.Lock()
        self.seen = 0
        self.inserts = 0
        self.failed = 0
        self.delayed = 0
        self._client = httpx2.Client(timeout=60.0, trust_env=False)
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                relay._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                relay._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def set_faults(self, *, delay_s: float = 0.0, fail_500: bool = False, forward: bool = False) -> None:
        """Switch faults on or off (all off by default)."""
        with self.lock:
            self.delay_s, self.fail_500, self.forward_failed = delay_s, fail_500, forward

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {"seen": self.seen, "inserts": self.inserts, "failed": self.failed, "delayed": self.delayed}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        body = _read_body(req)
        insert = b"INSERT" in body[:200].upper() or "INSERT" in req.path.upper().replace("%20", " ")
        with self.lock:
            self.seen += 1
            self.inserts += int(insert)
            delay, fail, forward = self.delay_s, self.fail_500, self.forward_failed
        if fail and not forward:
            return self._answer(req, 500, b"relay: injected HTTP 500\n", {"content-type": "text/plain"}, failed=True)
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP}
        try:
            resp = self._client.request(req.command, self.upstream + req.path, content=body, headers=headers)
            status, content = resp.status_code, resp.content
            out_headers = {k: v for k, v in resp.headers.items()
                           if k.lower() not in HOP and k.lower() != "content-encoding"}
        except httpx2.HTTPError as err:
            status, content, out_headers = 502, f"relay: upstream failed: {err!r}\n".encode(), {}
        if delay:
            with self.lock:
                self.delayed += 1
            time.sleep(delay)
        if fail:
            return self._answer(req, 500, b"relay: injected HTTP 500 (the server did take it)\n",
                                {"content-type": "text/plain"}, failed=True)
        self._answer(req, status, content, out_headers)

    def _answer(self, req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str],
                failed: bool = False) -> None:
        if failed:
            with self.lock:
                self.failed += 1
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("content-length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked; bounded by MAX_BODY."""
    if "chunked" in req.headers.get("transfer-encoding", "").lower():
        parts, total = [], 0
        while True:
            size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while req.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise ValueError("request body over the relay's bound")
            parts.append(req.rfile.read(size))
            req.rfile.readline()  # the CRLF after each chunk
    length = int(req.headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise ValueError("request body over the relay's bound")
    return req.rfile.read(length) if length else b""

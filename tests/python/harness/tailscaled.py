"""A stand-in tailscaled: the LocalAPI whois endpoint on a unix socket.

It answers `GET /localapi/v0/whois?addr=IP:PORT` the way tailscaled does:
200 with an `apitype.WhoIsResponse` (Go's `json.MarshalIndent` with tabs,
built from the recorded shapes in tests/fixtures/tailscale/), or 404 with
`no match for IP:port` for an address it does not know. Every request is
recorded. `stall = True` makes it read requests and never answer, like a
wedged tailscaled. It runs a plain `asyncio.start_unix_server` in a daemon
thread; every wait is bounded and `stop()` ends it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .procs import REPO

FIXTURES = REPO / "tests" / "fixtures" / "tailscale"
LOCALAPI_HOST = "local-tailscaled.sock"
MAX_STALL_S = 30.0


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class WhoisRequest:
    """One request as the stand-in saw it."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def addr(self) -> str:
        query = urllib.parse.urlsplit(self.target).query
        return urllib.parse.parse_qs(query).get("addr", [""])[0]

    @property
    def ip(self) -> str:
        return self.addr.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])


class FakeTailscaled:
    """The stand-in; `socket` is the path to give `identity.tailscale_socket`."""

    def __init__(self) -> None:
        # A short path: unix socket paths are limited to about 100 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="tsd-"))
        self.socket = self._dir / "tailscaled.sock"
        self.nodes: dict[str, dict] = {}
        self.requests: list[WhoisRequest] = []
        self.stall = False
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-tailscaled", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake tailscaled did not start")

    # --- the tailnet it describes -------------------------------------------------------

    def add_user(self, ip: str, login: str, display_name: str, node: str, models: list[str] | None = None) -> None:
        """A user's node at `ip`; `models` are the tailmeter capability's grant, if any."""
        answer = _fixture("whois_user.json")
        answer["Node"]["Name"] = f"{node}.tail1f2e3d.ts.net."
        answer["Node"]["ComputedName"] = answer["Node"]["ComputedNameWithHost"] = node
        answer["Node"]["StableID"] = f"n{abs(hash(ip)) % 10**8}CNTRL"
        answer["Node"]["Addresses"] = answer["Node"]["AllowedIPs"] = [f"{ip}/32"]
        answer["UserProfile"]["LoginName"] = login
        answer["UserProfile"]["DisplayName"] = display_name
        self._set_caps(answer, models)
        self.nodes[ip] = answer

    def add_tagged(self, ip: str, tags: list[str], node: str, models: list[str] | None = None) -> None:
        """A tagged node at `ip` (tags in the order given, as control may send them unsorted)."""
        answer = _fixture("whois_tagged.json")
        answer["Node"]["Name"] = f"{node}.tail1f2e3d.ts.net."
        answer["Node"]["ComputedName"] = answer["Node"]["ComputedNameWithHost"] = node
        answer["Node"]["Addresses"] = answer["Node"]["AllowedIPs"] = [f"{ip}/32"]
        answer["Node"]["Tags"] = list(tags)
        self._set_caps(answer, models)
        self.nodes[ip] = answer

    @staticmethod
    def _set_caps(answer: dict, models: list[str] | None) -> None:
        answer["CapMap"] = None if models is None else {"example.com/cap/tailmeter": [{"models": list(models)}]}

    def lookups(self, ip: str | None = None) -> int:
        """How many whois requests came (for `ip`, when given)."""
        return sum(1 for r in list(self.requests) if ip is None or r.ip == ip)

    # --- the server -------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_unix_server(self._handle, path=str(self.socket))
        self.socket.chmod(0o666)  # as tailscaled leaves it: any local user may ask whois
        self._ready.set()
        async with server:
            await self._stop.wait()
        # Let every connection (a stalled one included) finish before the loop closes.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                if self.stall:
                    assert self._stop is not None
                    try:
                        await asyncio.wait_for(self._stop.wait(), MAX_STALL_S)
                    except asyncio.TimeoutError:
                        pass
                    return
                writer.write(self._answer(request))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> WhoisRequest | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return WhoisRequest(method, target, headers)

    def _answer(self, request: WhoisRequest) -> bytes:
        path = urllib.parse.urlsplit(request.target).path
        if request.method != "GET" or path != "/localapi/v0/whois":
            return _http(404, "text/plain; charset=utf-8", b"404 not found\n")
        if request.headers.get("host") != LOCALAPI_HOST:
            return _http(403, "text/plain; charset=utf-8", b"invalid localapi request\n")
        if not request.addr:
            return _http(400, "text/plain; charset=utf-8", b"missing 'addr' parameter\n")
        answer = self.nodes.get(request.ip)
        if answer is None:
            return _http(404, "text/plain; charset=utf-8", b"no match for IP:port\n")
        body = json.dumps(copy.deepcopy(answer), indent="\t").encode()
        return _http(200, "application/json", body)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.socket.unlink(missing_ok=True)
        try:
            self._dir.rmdir()
        except OSError:
            pass


def _http(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body

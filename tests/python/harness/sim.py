"""Talk to provider-sim directly: what it recorded, and raw replays for comparison.

Each test tags its requests with a unique `x-e2e-marker` header (tailmeter
passes non-credential headers through), so it finds its own upstream requests
in `/_sim/requests` whatever else ran before.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx2

MARKER = "x-e2e-marker"


def new_marker() -> dict[str, str]:
    """A header dict carrying a fresh marker."""
    return {MARKER: uuid.uuid4().hex}


def _header_pairs(raw: Any) -> list[tuple[str, str]]:
    """The recorded headers as (lowercased name, value) pairs, whatever JSON shape the sim uses."""
    if isinstance(raw, dict):
        pairs = []
        for name, value in raw.items():
            values = value if isinstance(value, list) else [value]
            pairs += [(name.lower(), str(v)) for v in values]
        return pairs
    return [(str(item[0]).lower(), str(item[1])) for item in raw]


@dataclass
class SimRequest:
    """One request as provider-sim recorded it."""

    raw: dict[str, Any]

    @property
    def headers(self) -> list[tuple[str, str]]:
        return _header_pairs(self.raw.get("headers", {}))

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    @property
    def target(self) -> str:
        """Path with query string, whichever field names the sim uses."""
        path = self.raw.get("path") or self.raw.get("uri") or ""
        query = self.raw.get("query")
        if query and "?" not in path:
            path = f"{path}?{query}"
        return path

    @property
    def model(self) -> str | None:
        return self.raw.get("model")

    @property
    def body_len(self) -> int:
        return self.raw["body_len"]

    @property
    def body_sha256(self) -> str:
        return self.raw["body_sha256"]

    def leaked(self, secrets: list[str]) -> list[str]:
        """Every header (and the target) that contains one of `secrets`."""
        found = [f"{n}: {v}" for n, v in self.headers if any(s in v for s in secrets)]
        if any(s in self.target for s in secrets):
            found.append(f"target: {self.target}")
        return found


class Sim:
    """The running simulator."""

    def __init__(self, port: int, openai_key: str, anthropic_key: str):
        self.port = port
        self.addr = f"127.0.0.1:{port}"
        self.base_url = f"http://{self.addr}"
        self.openai_key = openai_key
        self.anthropic_key = anthropic_key

    def requests(self) -> list[SimRequest]:
        with httpx2.Client(timeout=10.0, trust_env=False) as http:
            resp = http.get(f"{self.base_url}/_sim/requests")
        resp.raise_for_status()
        data = resp.json()
        if isinstance(data, dict):
            data = data.get("requests", [])
        return [SimRequest(r) for r in data]

    def find(self, marker: dict[str, str], expect: int = 1) -> list[SimRequest]:
        """The recorded requests carrying `marker`; waits briefly until `expect` of them are there."""
        value = marker[MARKER]
        deadline = time.monotonic() + 3.0
        while True:
            found = [r for r in self.requests() if value in r.header(MARKER)]
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def one(self, marker: dict[str, str]) -> SimRequest:
        found = self.find(marker)
        assert len(found) == 1, f"simulator recorded {len(found)} requests with {marker}, expected 1"
        return found[0]

    def post_direct(self, path: str, body: bytes, headers: dict[str, str]) -> httpx2.Response:
        """POST straight to the simulator (no tailmeter), reading the whole body."""
        with httpx2.Client(timeout=30.0, trust_env=False) as http:
            return http.post(f"{self.base_url}{path}", content=body, headers=headers)

"""Clients that reach tailmeter from a chosen source address, and shared checks.

tailmeter identifies callers by source address (static CIDR entries), so every
client binds its socket to 127.0.0.X. The SDKs get the same httpx2 client the
plain-HTTP tests use, with retries off (an error must reach the test once)
and proxy variables ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anthropic
import httpx2
import openai

from .metrics import Metrics
from .procs import Process
from .sim import SimRequest

CLIENT_OPENAI_KEY = "sk-client-e2e-openai-4b1d7c"
CLIENT_ANTHROPIC_KEY = "sk-ant-client-e2e-9e52aa"
CLIENT_KEYS = [CLIENT_OPENAI_KEY, CLIENT_ANTHROPIC_KEY]
REQUEST_ID = "x-tailmeter-request-id"


@dataclass
class Tailmeter:
    """A running tailmeter instance."""

    proc: Process
    listen: str
    admin: str

    @property
    def base_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def metrics(self) -> Metrics:
        return Metrics(self.admin)

    def healthz(self) -> int:
        with httpx2.Client(timeout=5.0, trust_env=False) as http:
            return http.get(f"http://{self.admin}/healthz").status_code


@dataclass
class Capture:
    """Records the exact bytes of every request a client sends."""

    bodies: list[bytes] = field(default_factory=list)

    def hook(self, request: httpx2.Request) -> None:
        self.bodies.append(request.read())


def http_client(src: str, capture: Capture | None = None, timeout: float = 30.0) -> httpx2.Client:
    """A plain client whose connections come from `src`."""
    hooks = {"request": [capture.hook]} if capture else {}
    return httpx2.Client(
        transport=httpx2.HTTPTransport(local_address=src, trust_env=False),
        timeout=timeout,
        trust_env=False,
        event_hooks=hooks,
    )


def openai_client(tm: Tailmeter, src: str, capture: Capture | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{tm.base_url}/v1",
        api_key=CLIENT_OPENAI_KEY,
        http_client=http_client(src, capture),
        max_retries=0,
    )


def anthropic_client(tm: Tailmeter, src: str, auth: str = "api_key") -> anthropic.Anthropic:
    """`auth` is how the client key travels: `api_key`, `auth_token` or a raw `x-api-key` header."""
    common = {"base_url": tm.base_url, "http_client": http_client(src), "max_retries": 0}
    if auth == "api_key":
        return anthropic.Anthropic(api_key=CLIENT_ANTHROPIC_KEY, auth_token=None, **common)
    if auth == "auth_token":
        return anthropic.Anthropic(api_key=None, auth_token=CLIENT_ANTHROPIC_KEY, **common)
    if auth == "x-api-key":
        return anthropic.Anthropic(
            api_key=None, auth_token=None, default_headers={"x-api-key": CLIENT_ANTHROPIC_KEY}, **common
        )
    raise ValueError(f"unknown auth mode {auth}")


def assert_upstream_openai_auth(req: SimRequest, provider_key: str) -> None:
    """The simulator saw the provider's key, never a client's."""
    assert not req.leaked(CLIENT_KEYS), f"client key reached the provider: {req.leaked(CLIENT_KEYS)}"
    assert req.header("authorization") == [f"Bearer {provider_key}"], req.headers


def assert_upstream_anthropic_auth(req: SimRequest, provider_key: str) -> None:
    """The simulator saw only the provider key, in `x-api-key`, and no `Authorization` at all."""
    assert not req.leaked(CLIENT_KEYS), f"client key reached the provider: {req.leaked(CLIENT_KEYS)}"
    assert req.header("x-api-key") == [provider_key], req.headers
    assert req.header("authorization") == [], req.headers

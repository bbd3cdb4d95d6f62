"""Private tailmeter instances for the tailnet identity and budget tests.

The suite's standard config (harness/config.py) has whois off and no budgets;
these tests need their own `[identity]`, `[[grants]]`, `[[budgets]]` and
`[metrics]`, so `Setup` renders a whole config from those parts and `launch`
starts it like conftest does (OS-assigned ports, bounded readiness wait).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from . import config as cfg
from .clients import Tailmeter, http_client
from .procs import free_port, start_tailmeter

CAPABILITY = "example.com/cap/tailmeter"


@dataclass
class Static:
    """One `[[identity.static]]` entry: a login or tags for a CIDR."""

    cidr: str
    login: str | None = None
    tags: list[str] | None = None


@dataclass
class Budget:
    """One `[[budgets]]` entry (`subject` is `tag` or `identity`)."""

    name: str
    subject: str
    who: str
    tokens: int
    window: str
    on_exceed: str


@dataclass
class Setup:
    """What varies between these instances."""

    socket: str = ""
    capability: str | None = None
    trust_serve_headers: bool = False
    unknown: str = "reject"
    on_tailscaled_down: str = "reject"
    whois_timeout: str = "500ms"
    cache_ttl: str = "60s"
    negative_cache_ttl: str = "1s"
    statics: list[Static] = field(default_factory=list)
    grants: list[tuple[list[str], list[str]]] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    max_identities: int | None = None


def render(setup: Setup, listen: str, admin: str, sim_url: str) -> str:
    q = json.dumps
    out = [
        "[server]",
        f"listen = {q(listen)}",
        f"admin_listen = {q(admin)}",
        "",
        "[identity]",
        f"tailscale_socket = {q(setup.socket)}",
        f"trust_serve_headers = {'true' if setup.trust_serve_headers else 'false'}",
        f"unknown = {q(setup.unknown)}",
        f"on_tailscaled_down = {q(setup.on_tailscaled_down)}",
        f"whois_timeout = {q(setup.whois_timeout)}",
        f"cache_ttl = {q(setup.cache_ttl)}",
        f"negative_cache_ttl = {q(setup.negative_cache_ttl)}",
    ]
    if setup.capability:
        out.append(f"capability = {q(setup.capability)}")
    out.append("")
    for entry in setup.statics:
        out += ["[[identity.static]]", f"cidr = {q(entry.cidr)}"]
        out.append(f"login = {q(entry.login)}" if entry.login else f"tags = {q(entry.tags)}")
        out.append("")
    for p in cfg.standard_providers(sim_url):
        out += [
            "[[providers]]",
            f"name = {q(p.name)}",
            f"kind = {q(p.kind)}",
            f"base_url = {q(p.base_url)}",
            f"api_key = {q(p.api_key)}",
            f"models = {q(p.models)}",
            "",
        ]
    for src, models in setup.grants:
        out += ["[[grants]]", f"src = {q(src)}", f"models = {q(models)}", ""]
    for b in setup.budgets:
        out += [
            "[[budgets]]",
            f"name = {q(b.name)}",
            f"{b.subject} = {q(b.who)}",
            f"tokens = {b.tokens}",
            f"window = {q(b.window)}",
            f"on_exceed = {q(b.on_exceed)}",
            "",
        ]
    if setup.max_identities is not None:
        out += ["[metrics]", f"max_identities = {setup.max_identities}", ""]
    return "\n".join(out) + "\n"


def launch(binary: Path, workdir: Path, setup: Setup, sim_url: str, keys: dict[str, str],
           listen_host: str = "127.0.0.1") -> Tailmeter:
    """Start an instance for `setup`, its API on `listen_host` (e.g. `[::]`, both families); the
    caller stops `tm.proc`."""
    listen, admin = f"{listen_host}:{free_port()}", f"127.0.0.1:{free_port()}"
    path = workdir / "tailmeter.toml"
    path.write_text(render(setup, listen, admin, sim_url))
    proc = start_tailmeter(binary, path, workdir, keys, ready_at=admin)
    return Tailmeter(proc, listen, admin)


def whoami(tm: Tailmeter, src: str) -> httpx2.Response:
    with http_client(src) as http:
        return http.get(f"{tm.base_url}/tailmeter/whoami")


def chat(tm: Tailmeter, src: str, model: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    """A non-streamed chat completion from `src` (plain HTTP: the tests read refusals raw)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with http_client(src) as http:
        return http.post(f"{tm.base_url}/v1/chat/completions", json=body, headers=headers or {})


def messages(tm: Tailmeter, src: str, model: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    """A non-streamed Anthropic Messages call from `src`."""
    body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    hdrs = {"anthropic-version": "2023-06-01", **(headers or {})}
    with http_client(src) as http:
        return http.post(f"{tm.base_url}/v1/messages", json=body, headers=hdrs)

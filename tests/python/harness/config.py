"""The tailmeter TOML config the suite runs against, and the identities it names.

Grants: `src` entries are matched like Tailscale ACLs (a login, any one of the
caller's tags, or `*`), and several grants add up. A caller tagged
`tag:ci,tag:k8s` therefore gets everything granted to `tag:k8s` too, so the
broad grant goes to alice's login only, and `tag:ci` alone gets
`openai/gpt-4o`. 127.0.0.2 (`tag:k8s`) is identified but granted nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ALICE = "alice@example.com"
K8S = "tag:k8s"
CI_K8S = "tag:ci,tag:k8s"

SRC_ALICE = "127.0.0.1"
SRC_K8S = "127.0.0.2"
SRC_CI = "127.0.0.3"
SRC_UNKNOWN = "127.0.0.9"

OPENAI_MODELS = ["gpt-4o", "gpt-5-nano", "text-embedding-3-small"]
ANTHROPIC_MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5"]
# The image and audio models the clients' OpenAI provider serves too (Open WebUI's images and voice).
MEDIA_MODELS = ["gpt-image-1", "gpt-4o-transcribe", "gpt-4o-mini-tts"]
GRANTED = {
    ALICE: set(OPENAI_MODELS + ANTHROPIC_MODELS),
    K8S: set(),
    CI_K8S: {"gpt-4o"},
}

# The second instance: a small body limit, and providers that cannot be reached, one pair (an
# OpenAI and an Anthropic one) per way of failing; `fault_model` names their models.
LIMITS_MAX_BODY = 1024 * 1024
LIMITS_MAX_BODY_TOML = "1MiB"
# A closed port; a host name that does not resolve; a plain-HTTP server asked for TLS; a TLS
# server with a self-signed certificate; a host that never answers a connect (within the pair's
# 1 s connect_timeout).
FAULTS = ("dead", "nodns", "notls", "selfsigned", "blackhole")
FAULT_CONNECT_TIMEOUT_S = 1
# A model at a closed port, for other suites' own dead providers.
DEAD_MODEL = "gpt-dead"


def fault_model(kind: str, fault: str) -> str:
    """The model of the `kind` provider that fails as `fault`, e.g. `gpt-dead`, `claude-notls`."""
    return f"{'gpt' if kind == 'openai' else 'claude'}-{fault}"


def fault_providers(base_urls: dict[str, str]) -> list[Provider]:
    """For each fault in FAULTS, an OpenAI and an Anthropic provider at `base_urls[fault]`."""
    return [
        Provider(f"{fault}-{kind}", kind, base_urls[fault], f"${{{OPENAI_KEY_ENV}}}", [fault_model(kind, fault)],
                 connect_timeout=f"{FAULT_CONNECT_TIMEOUT_S}s")
        for fault in FAULTS
        for kind in ("openai", "anthropic")
    ]

# The resolver instance (harness.resolver): one OpenAI provider per scripted name, at
# `{name}.tailmeter-e2e.test` on its simulator's port, each with the 1 s connect_timeout. A name
# never answered; one answered after the connect_timeout; one that does not exist; one with a
# dead address before the simulator's; one with only dead addresses; one whose name server
# falls silent during the test.
RESOLVER_NAMES = ("silent", "late", "missing", "pair", "deadpair", "flip")


def resolver_providers(sim_port: int) -> list[Provider]:
    """For each of RESOLVER_NAMES, provider `{name}-openai` serving model `gpt-{name}`."""
    return [
        Provider(f"{name}-openai", "openai", f"http://{resolver_host(name)}:{sim_port}", f"${{{OPENAI_KEY_ENV}}}",
                 [fault_model("openai", name)], connect_timeout=f"{FAULT_CONNECT_TIMEOUT_S}s")
        for name in RESOLVER_NAMES
    ]


def resolver_host(name: str) -> str:
    return f"{name}.tailmeter-e2e.test"


# USD per million tokens.
GPT_4O_PRICE = {"input": 2.50, "output": 10.00, "cache_read": 1.25}

OPENAI_KEY_ENV = "TM_E2E_OPENAI_KEY"
ANTHROPIC_KEY_ENV = "TM_E2E_ANTHROPIC_KEY"
GEMINI_KEY_ENV = "TM_E2E_GEMINI_KEY"
BEDROCK_KEY_ENV = "TM_E2E_BEDROCK_KEY"

# The metering instance (test_gemini_sdk.py, test_stream_endings.py): every provider kind, and an
# OpenAI provider with a short idle_timeout for the stall tests.
GEMINI_MODELS = ["gemini-2.5-flash"]
BEDROCK_MODELS = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
IDLE_MODEL = "gpt-4o-idle"
IDLE_TIMEOUT_S = 1


@dataclass
class Provider:
    """One `[[providers]]` entry."""

    name: str
    kind: str
    base_url: str
    api_key: str
    models: list[str]
    idle_timeout: str | None = None
    connect_timeout: str | None = None
    http2: bool = False


@dataclass
class TailmeterConfig:
    """What varies between the suite's tailmeter instances."""

    listen: str
    admin_listen: str
    providers: list[Provider]
    max_request_body: str = "32MiB"
    # (src, models) per [[grants]] entry; None: the suite's standard grants.
    grants: list[tuple[list[str], list[str]]] | None = None
    # Optional tables appended verbatim ([events], [clickhouse], [otlp]), e.g. from sections().
    extra: str = ""
    # [server] shutdown_grace (e.g. "1s"); None: the default (30s).
    shutdown_grace: str | None = None
    # [server] client_header_timeout (e.g. "1s"); None: the default (30s).
    client_header_timeout: str | None = None


def standard_providers(sim_url: str) -> list[Provider]:
    """The two providers every instance has, both pointing at the simulator."""
    return [
        Provider("openai", "openai", sim_url, f"${{{OPENAI_KEY_ENV}}}", OPENAI_MODELS),
        Provider("anthropic", "anthropic", sim_url, f"${{{ANTHROPIC_KEY_ENV}}}", ANTHROPIC_MODELS),
    ]


# The client-program instance (tests/python/test_clients_*.py): the simulator synthesizes
# answers, and each provider has one model that is configured but granted to nobody. The Gemini
# models are the one docs/clients/gemini-cli.md names and the two Gemini CLI 0.61.0 picks itself.
# The Bedrock models are the two docs/clients/claude-code.md's Bedrock block names.
UNGRANTED = {"openai": "gpt-5", "anthropic": "claude-opus-4-5", "gemini": "gemini-2.5-pro",
             "bedrock": "us.anthropic.claude-opus-4-5-20251101-v1:0"}
GEMINI_CLI_MODELS = ["gemini-2.5-flash", "gemini-3.5-flash-lite", "gemini-3.8-flash"]
CLAUDE_BEDROCK_MODELS = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-haiku-4-5-20251001-v1:0"]


def clients_providers(sim_url: str) -> list[Provider]:
    """The standard providers (OpenAI's with image and audio models too), a Gemini and a Bedrock
    one, plus one ungranted model each."""
    providers = standard_providers(sim_url) + [
        Provider("gemini", "gemini", sim_url, f"${{{GEMINI_KEY_ENV}}}", GEMINI_CLI_MODELS),
        Provider("bedrock", "bedrock", sim_url, f"${{{BEDROCK_KEY_ENV}}}", CLAUDE_BEDROCK_MODELS)]
    providers[0].models = providers[0].models + MEDIA_MODELS
    for p in providers:
        p.models = p.models + [UNGRANTED[p.name]]
    return providers


def clients_grants() -> list[tuple[list[str], list[str]]]:
    """Alice may use every model of the clients' providers but the ungranted ones."""
    models = [f"openai/{m}" for m in OPENAI_MODELS + MEDIA_MODELS] + [f"anthropic/{m}" for m in ANTHROPIC_MODELS]
    models += [f"gemini/{m}" for m in GEMINI_CLI_MODELS] + [f"bedrock/{m}" for m in CLAUDE_BEDROCK_MODELS]
    return [([ALICE], models)]


def metering_providers(sim_url: str) -> list[Provider]:
    """The standard providers, a Gemini and a Bedrock one, and an OpenAI one that times out fast."""
    return standard_providers(sim_url) + [
        Provider("gemini", "gemini", sim_url, f"${{{GEMINI_KEY_ENV}}}", GEMINI_MODELS),
        Provider("bedrock", "bedrock", sim_url, f"${{{BEDROCK_KEY_ENV}}}", BEDROCK_MODELS),
        Provider("idle", "openai", sim_url, f"${{{OPENAI_KEY_ENV}}}", [IDLE_MODEL], f"{IDLE_TIMEOUT_S}s"),
    ]


def q(value: str) -> str:
    """A TOML basic string (JSON escaping is valid TOML for these ASCII values)."""
    return json.dumps(value)


def q_list(values: list[str]) -> str:
    return "[" + ", ".join(q(v) for v in values) + "]"


def render(cfg: TailmeterConfig) -> str:
    """The config file text."""
    out = [
        "[server]",
        f"listen = {q(cfg.listen)}",
        f"admin_listen = {q(cfg.admin_listen)}",
        f"max_request_body = {q(cfg.max_request_body)}",
        *([f"shutdown_grace = {q(cfg.shutdown_grace)}"] if cfg.shutdown_grace else []),
        *([f"client_header_timeout = {q(cfg.client_header_timeout)}"] if cfg.client_header_timeout else []),
        "",
        "[identity]",
        'tailscale_socket = ""',
        "trust_serve_headers = false",
        'unknown = "reject"',
        "",
        "[[identity.static]]",
        f'cidr = "{SRC_ALICE}/32"',
        f"login = {q(ALICE)}",
        "",
        "[[identity.static]]",
        f'cidr = "{SRC_K8S}/32"',
        f"tags = {q_list(['tag:k8s'])}",
        "",
        "[[identity.static]]",
        f'cidr = "{SRC_CI}/32"',
        f"tags = {q_list(['tag:ci', 'tag:k8s'])}",
        "",
    ]
    for p in cfg.providers:
        out += [
            "[[providers]]",
            f"name = {q(p.name)}",
            f"kind = {q(p.kind)}",
            f"base_url = {q(p.base_url)}",
            f"api_key = {q(p.api_key)}",
            f"models = {q_list(p.models)}",
            *([f"idle_timeout = {q(p.idle_timeout)}"] if p.idle_timeout else []),
            *([f"connect_timeout = {q(p.connect_timeout)}"] if p.connect_timeout else []),
            *(["http2 = true"] if p.http2 else []),
            "",
        ]
    grants = cfg.grants
    if grants is None:
        grants = [([ALICE], [f"{p.name}/*" for p in cfg.providers]), (["tag:ci"], ["openai/gpt-4o"])]
    for src, models in grants:
        out += ["[[grants]]", f"src = {q_list(src)}", f"models = {q_list(models)}", ""]
    out.append('[prices."gpt-4o"]')
    out += [f"{k} = {v}" for k, v in GPT_4O_PRICE.items()]
    return "\n".join(out) + "\n" + cfg.extra


def sections(**tables: dict[str, str | int | bool] | None) -> str:
    """Optional TOML tables, e.g. `sections(events={"dir": "/d", "batch_rows": 10})`; a None
    table is left out."""
    out = []
    for name, keys in tables.items():
        if keys is None:
            continue
        out.append(f"\n[{name}]")
        for key, value in keys.items():
            text = ("true" if value else "false") if isinstance(value, bool) else (
                str(value) if isinstance(value, int) else q(value))
            out.append(f"{key} = {text}")
    return "\n".join(out) + "\n"

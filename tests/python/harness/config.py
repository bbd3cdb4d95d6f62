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
GRANTED = {
    ALICE: set(OPENAI_MODELS + ANTHROPIC_MODELS),
    K8S: set(),
    CI_K8S: {"gpt-4o"},
}

# The second instance: a small body limit, and a provider whose base_url is a closed port.
LIMITS_MAX_BODY = 1024 * 1024
LIMITS_MAX_BODY_TOML = "1MiB"
DEAD_MODEL = "gpt-dead"

# USD per million tokens.
GPT_4O_PRICE = {"input": 2.50, "output": 10.00, "cache_read": 1.25}

OPENAI_KEY_ENV = "TM_E2E_OPENAI_KEY"
ANTHROPIC_KEY_ENV = "TM_E2E_ANTHROPIC_KEY"


@dataclass
class Provider:
    """One `[[providers]]` entry."""

    name: str
    kind: str
    base_url: str
    api_key: str
    models: list[str]


@dataclass
class TailmeterConfig:
    """What varies between the suite's tailmeter instances."""

    listen: str
    admin_listen: str
    providers: list[Provider]
    max_request_body: str = "32MiB"


def standard_providers(sim_url: str) -> list[Provider]:
    """The two providers every instance has, both pointing at the simulator."""
    return [
        Provider("openai", "openai", sim_url, f"${{{OPENAI_KEY_ENV}}}", OPENAI_MODELS),
        Provider("anthropic", "anthropic", sim_url, f"${{{ANTHROPIC_KEY_ENV}}}", ANTHROPIC_MODELS),
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
            "",
        ]
    grants = [([ALICE], [f"{p.name}/*" for p in cfg.providers]), (["tag:ci"], ["openai/gpt-4o"])]
    for src, models in grants:
        out += ["[[grants]]", f"src = {q_list(src)}", f"models = {q_list(models)}", ""]
    out.append('[prices."gpt-4o"]')
    out += [f"{k} = {v}" for k, v in GPT_4O_PRICE.items()]
    return "\n".join(out) + "\n"

"""The client setup snippets of docs/clients/*.md, as the tests' inputs.

A snippet is a fenced block whose info string names it after the language
(```` ```json claude-settings.json ````). The docs write the gateway as
`http://tailmeter:8080`; `snippet` puts the address under test in its place,
so what a user copies is exactly what the tests run.
"""

from __future__ import annotations

import re
import shlex

from .procs import REPO

DOCS = REPO / "docs" / "clients"
PLACEHOLDER = "http://tailmeter:8080"
FENCE = re.compile(r"^```[\w-]*[ \t]+(?P<name>\S+)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


def snippet(doc: str, name: str, gateway: str) -> str:
    """Block `name` of docs/clients/`doc`, with the gateway placeholder replaced by `gateway`."""
    text = (DOCS / doc).read_text()
    found = [m.group("body") for m in FENCE.finditer(text) if m.group("name") == name]
    assert len(found) == 1, f"{DOCS / doc}: expected one block named {name}, found {len(found)}"
    assert PLACEHOLDER in found[0] or "http" not in found[0], f"{name} does not use {PLACEHOLDER}"
    return found[0].replace(PLACEHOLDER, gateway)


def env_block(doc: str, name: str, gateway: str) -> dict[str, str]:
    """An environment block (`KEY=value` or `export KEY=value` lines) as a dict."""
    env = {}
    for line in snippet(doc, name, gateway).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        if not words:
            continue
        assert len(words) == 1 and "=" in words[0], f"{name}: not an assignment: {line!r}"
        key, value = words[0].split("=", 1)
        env[key] = value
    return env

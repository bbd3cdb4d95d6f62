"""Minimal server-sent-events reading for raw (non-SDK) stream checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    """One SSE event: its `event:` name (None when absent) and `data:` text."""

    name: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def events(body: bytes) -> list[Event]:
    """The events of a complete SSE body (LF or CRLF line endings; comments skipped)."""
    out: list[Event] = []
    name: str | None = None
    data: list[str] = []
    for line in body.decode().replace("\r\n", "\n").split("\n"):
        if line == "":
            if data:
                out.append(Event(name, "\n".join(data)))
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        out.append(Event(name, "\n".join(data)))
    return out


def json_payloads(body: bytes) -> list[Any]:
    """The JSON `data:` payloads, leaving out OpenAI's `[DONE]` sentinel."""
    return [e.json() for e in events(body) if e.data != "[DONE]"]

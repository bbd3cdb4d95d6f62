"""The benchmark's workloads and the bodies on both sides of them.

Upstream answers (written for bench-upstream): a 1 KiB chat completion, a chat stream of 200
chunks ending with the include_usage chunk, an Anthropic messages stream of 200 events. They
copy the shape of the recorded real responses in tests/fixtures, so the proxies' parsers do the
work they do on real traffic. Requests: one file per workload, sent as is by every client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CHAT_ID = "chatcmpl-C2P2HtMJhPkWjQ2adKerkdVilXmRL"
CHAT_MODEL = "gpt-4o-2024-08-06"
MESSAGE_ID = "msg_018E1hg8GoVTGEKQY3ovMcSJ"
MESSAGES_MODEL = "claude-sonnet-4-5-20250929"
STREAM_EVENTS = 200
JSON_RESPONSE_BYTES = 1024
BIG_REQUEST_BYTES = 1 << 20

# Models the proxies are configured with; a name ending in `-slow` makes bench-upstream drip.
OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-sonnet-4-5"
SLOW = "-slow"


@dataclass(frozen=True)
class Workload:
    """One request shape, sent by every load run of that workload."""

    key: str
    title: str
    path: str
    body_file: str
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False


# The client's key: dropped by tailmeter, ignored by the upstream, LiteLLM's master key.
CLIENT_KEY = "sk-bench-7f3a9c2e5b8d4f1a6c0e9b2d7a4f8c3e"
OPENAI_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {CLIENT_KEY}"}
ANTHROPIC_HEADERS = {
    "content-type": "application/json",
    "x-api-key": CLIENT_KEY,
    "authorization": f"Bearer {CLIENT_KEY}",
    "anthropic-version": "2023-06-01",
}

WORKLOADS = [
    Workload("a", "chat, JSON 1 KiB", "/v1/chat/completions", "a.json", OPENAI_HEADERS),
    Workload("b", "chat stream, 200 chunks", "/v1/chat/completions", "b.json", OPENAI_HEADERS, True),
    Workload("c", "messages stream, 200 events", "/v1/messages", "c.json", ANTHROPIC_HEADERS, True),
    Workload("d", "chat, 1 MiB request", "/v1/chat/completions", "d.json", OPENAI_HEADERS),
]
BY_KEY = {w.key: w for w in WORKLOADS}


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def chat_json() -> bytes:
    """A chat completion of exactly JSON_RESPONSE_BYTES bytes."""

    def body(content: str) -> bytes:
        return compact({
            "id": CHAT_ID, "object": "chat.completion", "created": 1754688929, "model": CHAT_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                                  "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 14, "completion_tokens": 180, "total_tokens": 194,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "service_tier": "default", "system_fingerprint": "fp_07871e2ad8",
        }).encode()

    filler = JSON_RESPONSE_BYTES - len(body(""))
    words = ("The capital of France is Paris. " * 64)[:filler]
    out = body(words)
    assert len(out) == JSON_RESPONSE_BYTES, len(out)
    return out


def chat_stream() -> bytes:
    """STREAM_EVENTS chunks (role, content, finish, usage) and `[DONE]`."""

    def chunk(delta: dict, finish: str | None = None, choices: bool = True, usage: object = None) -> str:
        payload = {"id": CHAT_ID, "object": "chat.completion.chunk", "created": 1754688929,
                   "model": CHAT_MODEL, "service_tier": "default", "system_fingerprint": "fp_07871e2ad8",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                   if choices else [],
                   "usage": usage, "obfuscation": "Qk5ENocFqkZOr"}
        return f"data: {compact(payload)}\n\n"

    content = STREAM_EVENTS - 3
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": f" word{i}"}) for i in range(content)]
    events.append(chunk({}, finish="stop"))
    usage = {"prompt_tokens": 14, "completion_tokens": content, "total_tokens": 14 + content,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0,
                                           "rejected_prediction_tokens": 0}}
    events.append(chunk({}, choices=False, usage=usage))
    assert len(events) == STREAM_EVENTS
    return ("".join(events) + "data: [DONE]\n\n").encode()


def messages_stream() -> bytes:
    """STREAM_EVENTS Anthropic events, message_start to message_stop."""

    def event(kind: str, payload: dict) -> str:
        return f"event: {kind}\ndata: {compact({'type': kind, **payload})}\n\n"

    usage = {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
             "output_tokens": 1, "service_tier": "standard"}
    deltas = STREAM_EVENTS - 6
    events = [
        event("message_start", {"message": {"model": MESSAGES_MODEL, "id": MESSAGE_ID, "type": "message",
                                            "role": "assistant", "content": [], "stop_reason": None,
                                            "stop_sequence": None, "usage": usage}}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]
    events += [event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": f" word{i}"}})
               for i in range(deltas)]
    events += [
        event("content_block_stop", {"index": 0}),
        event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0,
                                          "cache_read_input_tokens": 0, "output_tokens": deltas}}),
        event("message_stop", {}),
    ]
    assert len(events) == STREAM_EVENTS
    return "".join(events).encode()


def messages_json() -> bytes:
    return compact({"id": MESSAGE_ID, "type": "message", "role": "assistant", "model": MESSAGES_MODEL,
                    "content": [{"type": "text", "text": "The capital of France is Paris."}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0, "output_tokens": 9}}).encode()


def request(workload: Workload, slow: bool = False) -> bytes:
    """The request body of `workload`; `slow` names the dripping model."""
    suffix = SLOW if slow else ""
    user = {"role": "user", "content": "What is the capital of France?"}
    if workload.key == "c":
        return compact({"model": ANTHROPIC_MODEL + suffix, "max_tokens": 1024, "stream": True,
                        "messages": [user]}).encode()
    body: dict = {"model": OPENAI_MODEL + suffix, "messages": [user]}
    if workload.stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    if workload.key == "d":
        pad = BIG_REQUEST_BYTES - len(compact(body | {"messages": [user, {"role": "user", "content": ""}]}))
        # Prose, as a pasted document is: words and spaces (one 1 MiB word would make any
        # tokenizer's estimate quadratic, which real prompts never do).
        text = ("The quick brown fox jumps over the lazy dog while the committee reviews the "
                "quarterly figures, line by line, before lunch. ") * (pad // 100 + 1)
        body["messages"] = [user, {"role": "user", "content": text[:pad]}]
    out = compact(body).encode()
    assert workload.key != "d" or len(out) == BIG_REQUEST_BYTES
    return out


def write_all(root: Path) -> tuple[Path, Path]:
    """Writes the upstream's answers to root/upstream and the requests to root/requests."""
    answers, requests = root / "upstream", root / "requests"
    answers.mkdir(parents=True, exist_ok=True)
    requests.mkdir(parents=True, exist_ok=True)
    (answers / "chat.json").write_bytes(chat_json())
    (answers / "chat_stream.sse").write_bytes(chat_stream())
    (answers / "messages.json").write_bytes(messages_json())
    (answers / "messages_stream.sse").write_bytes(messages_stream())
    for workload in WORKLOADS:
        (requests / workload.body_file).write_bytes(request(workload))
    return answers, requests

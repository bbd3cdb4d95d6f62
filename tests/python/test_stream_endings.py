"""Every way a streamed response can end is metered once, with the provider's figures where they
arrived and honest estimates where they did not.

The simulator cuts each dialect's stream at seeded random points (`x-sim-fault: cut-after=N`,
upstream bytes). For every cut there must be exactly one request in tailmeter_requests_total and
one usage row whose `usage_source` says whose figures they are: `provider` when the cut came after
the provider's final usage report, else `estimated` (counted in tailmeter_usage_missing_total
with reason `upstream_reset`). The token counters move by exactly the row's figures: nothing is
double-counted. Client hang-ups, idle upstreams and error events are checked the same way.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx2
import pytest

from harness.clients import CLIENT_ANTHROPIC_KEY, CLIENT_OPENAI_KEY, REQUEST_ID, Tailmeter, http_client
from harness.cli_clients import event_rows
from harness.config import ALICE, BEDROCK_MODELS, GEMINI_MODELS, IDLE_MODEL, SRC_ALICE
from harness.metrics import TOKEN_TYPES, Delta, Expect, Usage
from harness.sim import Sim

SEED = 20261126
CUTS_PER_STREAM = 4
MESSAGES = [{"role": "user", "content": "Count to two."}]


@dataclass(frozen=True)
class Stream:
    """One streaming endpoint: how to call it through tailmeter and straight at the simulator."""

    name: str
    path: str
    body: dict
    client_headers: dict[str, str]
    sim_headers: dict[str, str]
    provider: str
    model: str
    endpoint: str
    usage: Usage
    # Bytes of the upstream body from which the provider's final usage report is complete.
    final_marker: bytes
    sim_body: dict = field(default_factory=dict)


def streams(sim: Sim) -> list[Stream]:
    openai_auth = {"authorization": f"Bearer {sim.openai_key}"}
    bedrock = BEDROCK_MODELS[0]
    return [
        Stream(
            "chat", "/v1/chat/completions", {"model": "gpt-4o", "stream": True, "messages": MESSAGES},
            {"authorization": f"Bearer {CLIENT_OPENAI_KEY}"}, openai_auth,
            "openai", "gpt-4o", "chat_completions", Usage(14, 8), b'"choices":[],',
            sim_body={"stream_options": {"include_usage": True}},
        ),
        Stream(
            "responses", "/v1/responses", {"model": "gpt-5-nano", "stream": True, "input": "hi"},
            {"authorization": f"Bearer {CLIENT_OPENAI_KEY}"}, openai_auth,
            "openai", "gpt-5-nano", "responses", Usage(53, 469, reasoning=448), b'"type":"response.completed"',
        ),
        Stream(
            "messages", "/v1/messages",
            {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 16, "messages": MESSAGES},
            {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
            {"x-api-key": sim.anthropic_key, "anthropic-version": "2023-06-01"},
            "anthropic", "claude-sonnet-4-5", "messages", Usage(20, 5), b'"type":"message_delta"',
        ),
        Stream(
            "gemini", f"/v1beta/models/{GEMINI_MODELS[0]}:streamGenerateContent?alt=sse",
            {"contents": [{"role": "user", "parts": [{"text": "Count to 30."}]}]},
            {"x-goog-api-key": "client-gemini-key"}, {"x-goog-api-key": "unused"},
            "gemini", GEMINI_MODELS[0], "generate_content", Usage(18, 115, reasoning=35), b'"usageMetadata"',
        ),
        Stream(
            "converse", f"/model/{quote(bedrock, safe='')}/converse-stream",
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            {"authorization": "Bearer client-bedrock-key"}, {},
            "bedrock", bedrock, "converse", Usage(210, 18), b"metadata",
        ),
    ]


def final_report_end(stream: Stream, body: bytes) -> int:
    """The cut from which the final usage report has arrived whole: the end of the last `data:`
    line holding `final_marker` (a complete JSON payload is read even without its blank line),
    of Gemini's last `usageMetadata` object (only that object is parsed, so the rest of its chunk
    may be missing), or of the whole body (event-stream frames are checked whole)."""
    at = body.rfind(stream.final_marker)
    assert at >= 0, (stream.name, stream.final_marker)
    if stream.name == "converse":
        return len(body)
    if stream.name == "gemini":
        return object_end(body, body.index(b"{", at))
    return len(body[:body.index(b"\n", at)].rstrip(b"\r"))


def object_end(body: bytes, start: int) -> int:
    """The offset just past the JSON object opening at `start` (no braces inside its strings)."""
    depth = 0
    for i in range(start, len(body)):
        depth += {ord("{"): 1, ord("}"): -1}.get(body[i], 0)
        if depth == 0:
            return i + 1
    raise AssertionError("unterminated object")


def upstream_body(sim: Sim, stream: Stream) -> bytes:
    """The bytes the simulator streams for this call (what cut-after counts in)."""
    if stream.name in ("gemini", "converse"):
        # Replayed fixtures, whatever the request says; read them the way the simulator serves them.
        return b""
    resp = sim.post_direct(
        stream.path, httpx2.Request("POST", "http://x", json={**stream.body, **stream.sim_body}).read(),
        {**stream.sim_headers, "content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    return resp.content


def fixture_body(name: str) -> bytes:
    from harness.procs import REPO

    raw = (REPO / "tests" / "fixtures" / name).read_bytes()
    return raw.split(b"\n", 1)[1] if raw.startswith(b"# source:") else raw


def full_body(sim: Sim, stream: Stream) -> bytes:
    if stream.name == "gemini":
        return fixture_body("gemini_stream_sse_usage_thoughts.sse")
    if stream.name == "converse":
        return fixture_body("bedrock_converse_stream_claude.eventstream.bin")
    return upstream_body(sim, stream)


def call(tm: Tailmeter, stream: Stream, fault: str) -> str:
    """Sends one request with `fault`, reads what comes, returns tailmeter's request id."""
    headers = {**stream.client_headers, "x-sim-fault": fault}
    with http_client(SRC_ALICE, timeout=20.0) as http:
        with http.stream("POST", f"{tm.base_url}{stream.path}", json=stream.body, headers=headers) as resp:
            request_id = resp.headers.get(REQUEST_ID)
            try:
                for _ in resp.iter_raw():
                    pass
            except httpx2.TransportError:
                pass
    assert request_id, "every proxied response carries x-tailmeter-request-id"
    return request_id


def rows_for(tm: Tailmeter, since_ms: int, ids: list[str]) -> dict[str, dict]:
    rows = event_rows(tm, since_ms, expect=len(ids)) or []
    by_id = {}
    for row in rows:
        if row["request_id"] in ids:
            assert row["request_id"] not in by_id, f"two rows for {row['request_id']}"
            by_id[row["request_id"]] = row
    return by_id


def row_usage(row: dict) -> Usage:
    return Usage(*(int(row[f"{t}_tokens"]) for t in TOKEN_TYPES))


def expect_counted(delta: Delta, stream: Stream, rows: list[dict], missing: dict[str, int]) -> None:
    """One request per row, tokens moved by exactly the rows' figures, missing reasons as given."""
    who = {"identity": ALICE, "provider": stream.provider, "model": stream.model}
    expects = [Expect("tailmeter_requests_total", {**who, "endpoint": stream.endpoint}, len(rows))]
    for t in TOKEN_TYPES:
        total = sum(int(r[f"{t}_tokens"]) for r in rows)
        expects.append(Expect("tailmeter_tokens_total", {**who, "type": t}, total))
    for reason, count in missing.items():
        labels = {"provider": stream.provider, "endpoint": stream.endpoint, "reason": reason}
        expects.append(Expect("tailmeter_usage_missing_total", labels, count))
    delta.expect(expects)


@pytest.mark.parametrize("name", ["chat", "responses", "messages", "gemini", "converse"])
def test_cut_at_random_points_is_counted_once(tailmeter_metering: Tailmeter, sim: Sim, name: str) -> None:
    stream = next(s for s in streams(sim) if s.name == name)
    body = full_body(sim, stream)
    complete_from = final_report_end(stream, body)
    rng = random.Random(f"{SEED}-{name}")
    cuts = sorted({rng.randrange(0, len(body)) for _ in range(CUTS_PER_STREAM)} | {complete_from, len(body)})
    assert_cuts_counted_once(tailmeter_metering, stream, cuts, complete_from)


def assert_cuts_counted_once(tm: Tailmeter, stream: Stream, cuts: list[int], complete_from: int) -> None:
    """`stream` cut after each of `cuts` bytes: one row each with status 200; the provider's
    figures exactly from `complete_from` on (where its final report has passed), an estimate
    with some input before it (counted as `upstream_reset`); the metrics moved by the rows."""
    since_ms = int(time.time() * 1000) - 1
    delta = tm.metrics.delta()
    ids = [call(tm, stream, f"cut-after={cut}") for cut in cuts]
    rows = rows_for(tm, since_ms, ids)
    assert sorted(rows) == sorted(ids), f"a row for every cut (cuts {cuts})"
    estimated = 0
    for cut, request_id in zip(cuts, ids):
        row = rows[request_id]
        assert row["status"] == 200 and row["endpoint"] == stream.endpoint, (cut, row)
        if cut >= complete_from:
            assert row["usage_source"] == "provider", (cut, row)
            assert row_usage(row) == stream.usage, (cut, row)
        else:
            estimated += 1
            assert row["usage_source"] == "estimated", (cut, row)
            assert int(row["input_tokens"]) > 0, (cut, row)
    expect_counted(delta, stream, list(rows.values()), {"upstream_reset": estimated})


def test_client_hanging_up_is_estimated(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    stream = next(s for s in streams(sim) if s.name == "messages")
    since_ms = int(time.time() * 1000) - 1
    delta = tailmeter_metering.metrics.delta()
    headers = {**stream.client_headers, "x-sim-fault": "chunk-delay-ms=200"}
    with http_client(SRC_ALICE, timeout=20.0) as http:
        with http.stream("POST", f"{tailmeter_metering.base_url}{stream.path}", json=stream.body, headers=headers) as resp:
            request_id = resp.headers[REQUEST_ID]
            next(resp.iter_raw())  # the first event, then hang up
    rows = rows_for(tailmeter_metering, since_ms, [request_id])
    assert rows[request_id]["usage_source"] == "estimated", rows
    # message_start's input (20) is the provider's and is kept.
    assert int(rows[request_id]["input_tokens"]) == 20
    expect_counted(delta, stream, list(rows.values()), {"client_disconnect": 1})


def test_upstream_idle_past_its_timeout_is_estimated(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    chat = next(s for s in streams(sim) if s.name == "chat")
    idle = Stream(**{**chat.__dict__, "name": "idle", "provider": "idle", "model": IDLE_MODEL,
                     "body": {**chat.body, "model": IDLE_MODEL}})
    since_ms = int(time.time() * 1000) - 1
    delta = tailmeter_metering.metrics.delta()
    # Events 1.5 s apart; the provider's idle_timeout is 1 s.
    ids = [call(tailmeter_metering, idle, "chunk-delay-ms=1500")]
    rows = rows_for(tailmeter_metering, since_ms, ids)
    assert rows[ids[0]]["usage_source"] == "estimated", rows
    expect_counted(delta, idle, list(rows.values()), {"upstream_idle_timeout": 1})


def test_error_event_in_a_200_stream_is_estimated(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    stream = next(s for s in streams(sim) if s.name == "chat")
    since_ms = int(time.time() * 1000) - 1
    delta = tailmeter_metering.metrics.delta()
    ids = [call(tailmeter_metering, stream, "error-event")]
    rows = rows_for(tailmeter_metering, since_ms, ids)
    assert rows[ids[0]]["usage_source"] == "estimated", rows
    expect_counted(delta, stream, list(rows.values()), {"upstream_error_event": 1})


def test_an_answer_cut_after_its_header_still_reaches_the_client(tailmeter_metering: Tailmeter) -> None:
    """A JSON answer (it has a Content-Length) cut 40 bytes in, the cut 300 ms after those bytes:
    Pingora holds a length-framed body until its end, so the header and the 40 bytes are still in
    the client connection's buffer when the failure comes alone. The client gets them, then the
    close, not a connection closed without a response."""
    since_ms = int(time.time() * 1000) - 1
    headers = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}", "x-sim-fault": "cut-after=40,chunk-delay-ms=300"}
    body = {"model": "gpt-4o", "messages": MESSAGES}
    with http_client(SRC_ALICE, timeout=20.0) as http:
        with http.stream("POST", f"{tailmeter_metering.base_url}/v1/chat/completions", json=body,
                         headers=headers) as resp:
            assert resp.status_code == 200
            request_id = resp.headers[REQUEST_ID]
            received = bytearray()
            with pytest.raises(httpx2.TransportError):
                for piece in resp.iter_raw():
                    received += piece
    assert len(received) == 40, bytes(received)
    rows = rows_for(tailmeter_metering, since_ms, [request_id])
    assert (rows[request_id]["status"], rows[request_id]["usage_source"]) == (200, "estimated"), rows


def test_long_prompts_without_usage_are_estimated_once_each(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    """A 600 kB prompt's input estimate takes the tokenizer tens of milliseconds, made away from
    the thread serving the connection. Four clients hanging up at once and one answer that ends
    without its usage report each still get one row, with the same estimate (same prompt, same
    model), and the answer that ended whole reaches its client whole."""
    chat = next(s for s in streams(sim) if s.name == "chat")
    prose = "The committee reviews the quarterly figures, line by line, before lunch. " * 8000
    body = {**chat.body, **chat.sim_body, "messages": [{"role": "user", "content": prose}]}
    since_ms = int(time.time() * 1000) - 1
    delta = tailmeter_metering.metrics.delta()

    def hang_up(_: int) -> str:
        headers = {**chat.client_headers, "x-sim-fault": "chunk-delay-ms=200"}
        with http_client(SRC_ALICE, timeout=20.0) as http:
            with http.stream("POST", f"{tailmeter_metering.base_url}{chat.path}", json=body,
                             headers=headers) as resp:
                next(resp.iter_raw())
                return resp.headers[REQUEST_ID]

    with ThreadPoolExecutor(4) as pool:
        cut_ids = list(pool.map(hang_up, range(4)))
    headers = {**chat.client_headers, "x-sim-fault": "end-after=700"}
    with http_client(SRC_ALICE, timeout=20.0) as http:
        resp = http.post(f"{tailmeter_metering.base_url}{chat.path}", json=body, headers=headers)
    assert resp.status_code == 200 and len(resp.content) == 700, resp.content
    ended_id = resp.headers[REQUEST_ID]

    rows = rows_for(tailmeter_metering, since_ms, [*cut_ids, ended_id])
    assert sorted(rows) == sorted([*cut_ids, ended_id]), rows
    inputs = {int(row["input_tokens"]) for row in rows.values()}
    assert len(inputs) == 1, rows
    assert len(prose) / 8 < inputs.pop() < len(prose) / 3, rows
    assert all(row["usage_source"] == "estimated" for row in rows.values()), rows
    expect_counted(delta, chat, list(rows.values()), {"client_disconnect": 4, "not_reported": 1})

"""Upstream faults of issue 9 beyond the plain HTTP/1.1 ones: a provider that compresses although
asked for `identity` (a gzip body, then one cut short), and a provider on HTTP/2 that sends GOAWAY.

A private simulator speaks HTTP/1.1 and HTTP/2 without TLS (`--http2`); a private tailmeter has
the provider `openai` on HTTP/1.1 and `h2` (`http2 = true`, h2c by prior knowledge) on the same
simulator. Each fault must reach the client as a well-formed answer in its dialect (a compressed
body exactly as the provider sent it), be metered with its reason (tailmeter_usage_missing_total
and `usage_source` on the row), and leak no descriptors or threads.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from harness import config as cfg
from harness import events as ev
from harness import leaks
from harness.cli_clients import event_rows
from harness.clients import CLIENT_OPENAI_KEY, REQUEST_ID, Tailmeter, http_client
from harness.events import wait_for
from harness.expected import CHAT_NONSTREAM, CHAT_STREAM
from harness.metrics import Usage
from harness.procs import free_port, start_sim, start_tailmeter
from harness.sim import Sim, new_marker
from harness.sse import json_payloads

OPENAI = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}"}
H2_MODEL = "gpt-4o-h2"
H2_IDLE_MODEL = "gpt-4o-h2-idle"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}


@pytest.fixture(scope="module")
def h2_sim(binaries: dict[str, Path], fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    workdir = tmp_path_factory.mktemp("sim-h2")
    openai_key, anthropic_key = ev.PROVIDER_ENV[cfg.OPENAI_KEY_ENV], ev.PROVIDER_ENV[cfg.ANTHROPIC_KEY_ENV]
    proc, port = start_sim(binaries["sim"], fixtures_dir, openai_key, anthropic_key, workdir, ("--http2",))
    yield Sim(port, openai_key, anthropic_key)
    proc.stop()


@pytest.fixture(scope="module")
def tm(binaries: dict[str, Path], h2_sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tailmeter]:
    workdir = tmp_path_factory.mktemp("tailmeter-encoding")
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    key = f"${{{cfg.OPENAI_KEY_ENV}}}"
    providers = [
        cfg.Provider("openai", "openai", h2_sim.base_url, key, ["gpt-4o"]),
        cfg.Provider("h2", "openai", h2_sim.base_url, key, [H2_MODEL], http2=True),
        cfg.Provider("h2-idle", "openai", h2_sim.base_url, key, [H2_IDLE_MODEL], "1s", http2=True),
    ]
    (workdir / "tailmeter.toml").write_text(cfg.render(cfg.TailmeterConfig(listen, admin, providers)))
    proc = start_tailmeter(binaries["tailmeter"], workdir / "tailmeter.toml", workdir, ev.PROVIDER_ENV, ready_at=admin)
    yield Tailmeter(proc, listen, admin)
    proc.stop()


def post(tm: Tailmeter, fault: str, body: dict, headers: dict | None = None) -> tuple[httpx2.Response, bytes, bool]:
    """The response, its body bytes exactly as sent (no decoding), and whether it ended properly."""
    with http_client(cfg.SRC_ALICE, timeout=30.0) as http:
        hdrs = {**OPENAI, "x-sim-fault": fault, **(headers or {})}
        with http.stream("POST", f"{tm.base_url}/v1/chat/completions", json=body, headers=hdrs) as resp:
            raw = b""
            try:
                for piece in resp.iter_raw():
                    raw += piece
            except httpx2.TransportError:
                return resp, raw, False
            return resp, raw, True


def row(tm: Tailmeter, since_ms: int, request_id: str) -> dict:
    rows = {}
    wait_for(f"the row of {request_id}", lambda: rows.update(
        {r["request_id"]: r for r in event_rows(tm, since_ms, 1, 1.0)}) or request_id in rows, 15)
    return rows[request_id]


def row_usage(r: dict) -> Usage:
    return Usage(int(r["input_tokens"]), int(r["output_tokens"]), int(r["cache_read_tokens"]),
                 int(r["cache_write_tokens"]), int(r["reasoning_tokens"]))


def metered(tm: Tailmeter, fault: str, body: dict, model: str = "gpt-4o",
            headers: dict | None = None) -> tuple[httpx2.Response, bytes, bool, dict]:
    since_ms = int(time.time() * 1000) - 1
    resp, raw, whole = post(tm, fault, {**body, "model": model}, headers)
    assert resp.status_code == 200, raw[:300]
    return resp, raw, whole, row(tm, since_ms, resp.headers[REQUEST_ID])


def missing(tm: Tailmeter, delta, reason: str) -> None:  # noqa: ANN001 - harness Delta
    wait_for(f"one request metered with reason {reason}",
             lambda: delta.now("tailmeter_usage_missing_total", reason=reason) >= 1, 10)
    assert delta.now("tailmeter_usage_missing_total") == 1


def test_a_gzip_body_passes_as_sent_and_its_usage_is_read(tm: Tailmeter) -> None:
    delta = tm.metrics.delta()
    resp, raw, whole, r = metered(tm, "gzip", CHAT)
    assert whole and resp.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw))["object"] == "chat.completion"
    assert int(resp.headers["content-length"]) == len(raw)
    assert (r["usage_source"], row_usage(r)) == ("provider", CHAT_NONSTREAM), r
    time.sleep(0.3)
    assert delta.now("tailmeter_usage_missing_total") == 0


def test_a_gzip_stream_streams_and_its_usage_is_read(tm: Tailmeter) -> None:
    """A stream the provider gzips, flushed per event. tailmeter asked for the usage chunk itself
    but cannot cut it out of a compressed stream: the client gets it too (documented)."""
    resp, raw, whole, r = metered(tm, "gzip,chunk-delay-ms=5", STREAM)
    assert whole and resp.headers["content-encoding"] == "gzip"
    text = zlib.decompress(raw, wbits=31)
    assert text.rstrip().endswith(b"data: [DONE]"), text[-200:]
    assert json_payloads(text)[0]["object"] == "chat.completion.chunk"
    assert (r["usage_source"], row_usage(r)) == ("provider", CHAT_STREAM), r


def test_a_truncated_gzip_body_ending_properly_is_estimated_as_bad_encoding(tm: Tailmeter) -> None:
    """The HTTP body ends properly (a short content-length), its gzip does not."""
    for body in (CHAT, STREAM):
        delta = tm.metrics.delta()
        resp, raw, whole, r = metered(tm, "gzip,end-after=200", body)
        assert whole and len(raw) == 200 and resp.headers["content-encoding"] == "gzip"
        assert zlib.decompressobj(wbits=31).decompress(raw), "the client can read what came"
        assert r["usage_source"] == "estimated" and int(r["input_tokens"]) > 0, r
        missing(tm, delta, "bad_encoding")


def test_a_gzip_stream_cut_by_the_upstream_is_an_upstream_reset(tm: Tailmeter) -> None:
    """The connection drops in the middle of the gzip stream: the client gets the bytes that
    came, then the connection ends as the upstream's did; metered as any cut stream."""
    delta = tm.metrics.delta()
    resp, raw, whole, r = metered(tm, "gzip,cut-after=200", STREAM)
    assert not whole and 0 < len(raw) <= 200, (whole, len(raw))
    assert zlib.decompressobj(wbits=31).decompress(raw).startswith(b"data: ")
    assert r["usage_source"] == "estimated", r
    missing(tm, delta, "upstream_reset")


def test_h2c_provider_is_spoken_http2(tm: Tailmeter, h2_sim: Sim) -> None:
    marker = new_marker()
    since_ms = int(time.time() * 1000) - 1
    resp, raw, whole = post(tm, "", {**STREAM, "model": H2_MODEL}, marker)
    assert resp.status_code == 200 and whole, raw[:300]
    assert h2_sim.one(marker).raw["version"] == "HTTP/2.0"
    r = row(tm, since_ms, resp.headers[REQUEST_ID])
    assert (r["usage_source"], row_usage(r)) == ("provider", CHAT_STREAM), r


def test_a_large_chunked_body_reaches_an_h2c_provider_whole(tm: Tailmeter, h2_sim: Sim) -> None:
    """4 MiB sent chunked, read whole before proxying, goes to an HTTP/2 provider in DATA frames
    byte for byte (vendored change 7 on Pingora's HTTP/2 path)."""
    marker = new_marker()
    since_ms = int(time.time() * 1000) - 1
    body = json.dumps({**CHAT, "model": H2_MODEL, "user": "x" * (4 << 20)}).encode()
    with http_client(cfg.SRC_ALICE, timeout=30.0) as http:
        resp = http.post(f"{tm.base_url}/v1/chat/completions", headers={**OPENAI, **marker},
                         content=(body[i:i + 65536] for i in range(0, len(body), 65536)))
    assert resp.status_code == 200, resp.text
    got = h2_sim.one(marker)
    assert got.raw["version"] == "HTTP/2.0"
    assert (got.body_len, got.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    r = row(tm, since_ms, resp.headers[REQUEST_ID])
    assert (r["usage_source"], row_usage(r)) == ("provider", CHAT_NONSTREAM), r


def test_goaway_mid_stream_lets_the_stream_finish_and_the_next_request_reconnects(tm: Tailmeter) -> None:
    """A graceful GOAWAY (NO_ERROR) while the response streams: the stream in flight finishes,
    is metered from the provider's usage, and the next request opens a new connection."""
    delta = tm.metrics.delta()
    resp, raw, whole, r = metered(tm, "goaway,chunk-delay-ms=20", STREAM, H2_MODEL)
    assert whole and raw.rstrip().endswith(b"data: [DONE]"), raw[-200:]
    assert (r["usage_source"], row_usage(r)) == ("provider", CHAT_STREAM), r
    for _ in range(3):
        resp, raw, whole, r = metered(tm, "", CHAT, H2_MODEL)
        assert whole and (r["usage_source"], row_usage(r)) == ("provider", CHAT_NONSTREAM), r
    time.sleep(0.3)
    assert delta.now("tailmeter_usage_missing_total") == 0


def test_goaway_then_a_reset_stream_is_an_upstream_reset(tm: Tailmeter) -> None:
    """GOAWAY, then the stream in flight is reset (RST_STREAM) after 2000 bytes: the client gets
    the events that came whole (tailmeter holds back a partial event while it strips the usage
    chunk it asked for) and a cut stream; the request is estimated as an upstream reset."""
    delta = tm.metrics.delta()
    resp, raw, whole, r = metered(tm, "goaway,chunk-delay-ms=20,cut-after=2000", STREAM, H2_MODEL)
    assert not whole and raw.startswith(b"data: ") and raw.endswith(b"\n\n"), (whole, raw[-100:])
    assert r["usage_source"] == "estimated", r
    missing(tm, delta, "upstream_reset")


def test_an_abrupt_goaway_mid_stream_is_an_upstream_reset(tm: Tailmeter) -> None:
    """2000 bytes into the stream the provider sends GOAWAY with INTERNAL_ERROR naming the stream
    in flight and closes the connection: the client gets the whole events and a cut stream, the
    request is estimated as an upstream reset, and the next requests open a new connection."""
    delta = tm.metrics.delta()
    resp, raw, whole, r = metered(tm, "goaway-error=2,chunk-delay-ms=20,cut-after=2000", STREAM, H2_MODEL)
    assert not whole and raw.startswith(b"data: ") and raw.endswith(b"\n\n"), (whole, raw[-100:])
    assert r["usage_source"] == "estimated", r
    missing(tm, delta, "upstream_reset")
    for _ in range(3):
        resp, raw, whole, r = metered(tm, "", CHAT, H2_MODEL)
        assert whole and (r["usage_source"], row_usage(r)) == ("provider", CHAT_NONSTREAM), r


def test_a_stream_an_abrupt_goaway_left_unprocessed_is_sent_again(tm: Tailmeter, h2_sim: Sim) -> None:
    """GOAWAY with INTERNAL_ERROR before the response starts, naming an earlier stream (so this
    one was never processed), then the connection closes: tailmeter sends the request again on a
    new connection (once here: `once=`), the client gets the whole stream, metered once."""
    delta = tm.metrics.delta()
    marker = new_marker()
    once = f"goaway-error=2,once={random.getrandbits(48)}"
    resp, raw, whole, r = metered(tm, once, STREAM, H2_MODEL, marker)
    assert whole and raw.rstrip().endswith(b"data: [DONE]"), raw[-200:]
    assert (r["usage_source"], row_usage(r)) == ("provider", CHAT_STREAM), r
    sent = h2_sim.find(marker, expect=2)
    assert len(sent) == 2 and len({s.raw["peer"] for s in sent}) == 2, sent
    assert {s.body_sha256 for s in sent} == {sent[0].body_sha256}, "the retry carries the same body"
    time.sleep(0.3)
    assert delta.now("tailmeter_usage_missing_total") == 0
    assert delta.now("tailmeter_requests_total") == 1


def test_a_provider_that_keeps_refusing_gets_three_attempts_then_an_error_in_the_dialect(
        tm: Tailmeter, h2_sim: Sim) -> None:
    """The same GOAWAY on every attempt: three attempts, then 502 in OpenAI's error format,
    one row (status 502, estimated) and one missing-usage count. Eight times over: an attempt
    must never land on a connection already told to go away, whichever thread drives it
    (before `vendor/pingora-proxy` change 5, 17 of 40 such calls reached the provider only once
    or twice)."""
    for _ in range(8):
        delta = tm.metrics.delta()
        marker = new_marker()
        since_ms = int(time.time() * 1000) - 1
        resp, raw, whole = post(tm, "goaway-error=2", {**STREAM, "model": H2_MODEL}, marker)
        assert resp.status_code == 502 and whole, (resp.status_code, raw[:300])
        assert json.loads(raw)["error"]["code"] == "upstream_failed", raw
        assert len(h2_sim.find(marker, expect=3)) == 3
        r = row(tm, since_ms, resp.headers[REQUEST_ID])
        assert (r["status"], r["usage_source"]) == (502, "estimated"), r
        missing(tm, delta, "upstream_reset")


def test_an_idle_h2_stream_is_cut_at_its_idle_timeout(tm: Tailmeter) -> None:
    """Events 1.5 s apart from a provider whose `idle_timeout` is 1 s, over HTTP/2."""
    delta = tm.metrics.delta()
    started = time.monotonic()
    resp, raw, whole, r = metered(tm, "chunk-delay-ms=1500", STREAM, H2_IDLE_MODEL)
    assert not whole and time.monotonic() - started < 6, time.monotonic() - started
    assert r["usage_source"] == "estimated", r
    missing(tm, delta, "upstream_idle_timeout")


def _burst(tm: Tailmeter) -> None:
    """Every fault of this file, twice over, from four threads at once."""
    calls = [
        ("gzip", CHAT, "gpt-4o"), ("gzip,end-after=200", STREAM, "gpt-4o"), ("gzip,cut-after=200", STREAM, "gpt-4o"),
        ("goaway,chunk-delay-ms=5", STREAM, H2_MODEL), ("goaway,chunk-delay-ms=5,cut-after=2000", STREAM, H2_MODEL), ("", CHAT, H2_MODEL),
        ("goaway-error=2,chunk-delay-ms=5,cut-after=2000", STREAM, H2_MODEL),
    ]

    def call(fault: str, body: dict, model: str) -> Callable[[], None]:
        def run() -> None:
            resp, _, _ = post(tm, fault, {**body, "model": model})
            assert resp.status_code == 200, resp.status_code
        return run

    leaks.burst([call(*c) for c in calls])


def test_encoding_and_goaway_faults_leak_no_descriptors_or_threads(tm: Tailmeter) -> None:
    leaks.assert_no_leak(tm, lambda: _burst(tm))

"""Traces: one OTLP span per proxied request, following the OpenTelemetry GenAI semantic
conventions, received by a collector built on the official protobuf definitions
(`otlp-receiver`), over gRPC and over HTTP. A client's W3C `traceparent` is continued (same
trace, the client's span as parent) and passed upstream with tailmeter's span as the parent;
the row of the request stores the same trace id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import config as cfg
from harness.clients import CLIENT_ANTHROPIC_KEY, REQUEST_ID, http_client
from harness.events import CHAT, TRACEPARENT, OtlpReceiver, chat, json_rows, launch, wait_for
from harness.sim import Sim, new_marker

CLIENT_TRACE = TRACEPARENT.split("-")[1]
CLIENT_SPAN = TRACEPARENT.split("-")[2]
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    recv = OtlpReceiver(tmp_path)
    yield recv
    recv.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_one_genai_span_per_request(binaries: dict[str, Path], sim: Sim, tmp_path: Path, receiver: OtlpReceiver, protocol: str) -> None:
    endpoint = receiver.grpc if protocol == "grpc" else receiver.http
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  events={"dir": str(data), "batch_interval": "100ms"},
                  otlp={"endpoint": f"http://{endpoint}", "protocol": protocol})
    marker = new_marker()
    anthropic = {"x-api-key": CLIENT_ANTHROPIC_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    try:
        with http_client(cfg.SRC_ALICE) as alice, http_client(cfg.SRC_CI) as ci:
            traced = chat(alice, inst.tm, headers={"traceparent": TRACEPARENT, **marker})
            fresh = alice.post(f"{inst.tm.base_url}/v1/messages", headers=anthropic, json={
                "model": "claude-haiku-4-5", "max_tokens": 16, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]})
            fresh.read()
            tagged = chat(ci, inst.tm)
            refused = chat(ci, inst.tm, body={**CHAT, "model": "gpt-5-nano"})
        ids = [r.headers[REQUEST_ID] for r in (traced, fresh, tagged, refused)]
        assert [r.status_code for r in (traced, fresh, tagged, refused)] == [200, 200, 200, 403]
        wait_for("a span per request", lambda: len(receiver.spans()) >= 4, timeout_s=20)
        wait_for("a row per request", lambda: len(json_rows(data)) >= 4)
        spans = {s["attributes"]["tailmeter.request_id"]: s for s in receiver.spans()}
        rows = {r["request_id"]: r for r in json_rows(data)}
        assert sorted(spans) == sorted(ids), "exactly one span per request"
        assert {s["transport"] for s in spans.values()} == {protocol}

        span = spans[ids[0]]
        assert (span["trace_id"], span["parent_span_id"]) == (CLIENT_TRACE, CLIENT_SPAN)
        assert span["name"] == "chat gpt-4o" and span["kind"] == SPAN_KIND_CLIENT
        assert span["resource"]["service.name"] == "tailmeter" and span["scope"] == "tailmeter"
        attrs, row = span["attributes"], rows[ids[0]]
        assert row["trace_id"] == CLIENT_TRACE
        expected = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": row["response_model"],
            "gen_ai.usage.input_tokens": row["input_tokens"],
            "gen_ai.usage.output_tokens": row["output_tokens"],
            "gen_ai.usage.cache_read.input_tokens": row["cache_read_tokens"],
            "gen_ai.usage.cache_creation.input_tokens": row["cache_write_tokens"],
            "server.address": "127.0.0.1",
            "tailmeter.identity": cfg.ALICE,
            "tailmeter.login": cfg.ALICE,
            "http.response.status_code": 200,
        }
        assert {k: attrs.get(k) for k in expected} == expected
        assert "error.type" not in attrs
        assert span["end_ns"] - span["start_ns"] == pytest.approx(row["duration_ms"] * 1e6, rel=0.01, abs=2e6)
        # Upstream saw the same trace, with tailmeter's span as the parent.
        upstream = sim.one(marker).header("traceparent")
        assert upstream == [f"00-{CLIENT_TRACE}-{span['span_id']}-01"], upstream

        started = spans[ids[1]]
        assert started["parent_span_id"] == "" and started["trace_id"] == rows[ids[1]]["trace_id"]
        assert len(started["trace_id"]) == 32 and started["trace_id"] != CLIENT_TRACE
        assert started["name"] == "chat claude-haiku-4-5"
        assert started["attributes"]["gen_ai.provider.name"] == "anthropic"
        assert started["attributes"]["gen_ai.usage.output_tokens"] == rows[ids[1]]["output_tokens"] > 0

        assert spans[ids[2]]["attributes"]["tailmeter.tags"] == ["tag:ci", "tag:k8s"]
        failed = spans[ids[3]]
        assert failed["attributes"]["error.type"] == "403" and failed["status_code"] == STATUS_ERROR
    finally:
        assert inst.tm.proc.stop() == 0


def test_an_unsampled_client_trace_is_kept_but_not_exported(binaries: dict[str, Path], sim: Sim, tmp_path: Path, receiver: OtlpReceiver) -> None:
    data = tmp_path / "events"
    inst = launch(binaries["tailmeter"], tmp_path, sim.base_url,
                  events={"dir": str(data), "batch_interval": "100ms"},
                  otlp={"endpoint": f"http://{receiver.grpc}"})
    unsampled = TRACEPARENT[:-2] + "00"
    marker = new_marker()
    try:
        with http_client(cfg.SRC_ALICE) as alice:
            rid = chat(alice, inst.tm, headers={"traceparent": unsampled, **marker}).headers[REQUEST_ID]
            chat(alice, inst.tm)  # a sampled one, so the export has run when it shows up
        wait_for("the sampled span", lambda: len(receiver.spans()) >= 1)
        wait_for("both rows", lambda: len(json_rows(data)) >= 2)
        assert rid not in {s["attributes"]["tailmeter.request_id"] for s in receiver.spans()}
        assert {r["request_id"]: r for r in json_rows(data)}[rid]["trace_id"] == CLIENT_TRACE
        assert sim.one(marker).header("traceparent") == [unsampled], "passed upstream untouched"
    finally:
        assert inst.tm.proc.stop() == 0

"""Config reload on SIGHUP (issue 9, "Process faults").

The file is validated first: a broken one keeps the running config and the log says why (file,
line, key); a good one swaps routes, grants and the rest without a restart, and a stream in
flight across the reload finishes on the config it started with.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx2

from harness import config as cfg
from harness import events as ev
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client
from harness.sim import Sim

NEW_MODEL = "gpt-4.1-mini"
HEADERS = {"authorization": f"Bearer {CLIENT_OPENAI_KEY}"}


def chat(tm: Tailmeter, model: str, **extra: object) -> httpx2.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    with http_client(cfg.SRC_ALICE) as http:
        return http.post(f"{tm.base_url}/v1/chat/completions", json=body, headers=HEADERS)


def listed(tm: Tailmeter) -> set[str]:
    with http_client(cfg.SRC_ALICE) as http:
        return {m["id"] for m in http.get(f"{tm.base_url}/v1/models", headers=HEADERS).json()["data"]}


def write_config(inst: ev.Instance, sim: Sim, openai_models: list[str]) -> None:
    providers = cfg.standard_providers(sim.base_url)
    providers[0].models = openai_models
    inst.config.write_text(cfg.render(cfg.TailmeterConfig(inst.tm.listen, inst.tm.admin, providers)))


def test_reload_swaps_routes_and_a_broken_file_keeps_the_old_config(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path
) -> None:
    inst = ev.launch(binaries["tailmeter"], tmp_path, sim.base_url)
    tm = inst.tm
    try:
        assert chat(tm, NEW_MODEL).status_code == 404
        write_config(inst, sim, cfg.OPENAI_MODELS + [NEW_MODEL])
        ev.hangup_and_wait(inst.tm, "configuration reloaded", 1)
        resp = chat(tm, NEW_MODEL)
        assert resp.status_code == 200, resp.text
        assert NEW_MODEL in listed(tm)

        good = inst.config.read_text()
        inst.config.write_text(good.replace("[server]\n", "[server]\nbogus_key = 1\n", 1))
        ev.hangup_and_wait(inst.tm, "still serving the previous one", 1)
        log = tm.proc.log_text(500_000)
        assert str(inst.config) in log and "bogus_key" in log, log[-2000:]
        inst.config.write_text("this is not toml [")
        ev.hangup_and_wait(inst.tm, "still serving the previous one", 2)
        assert tm.proc.alive()
        assert chat(tm, NEW_MODEL).status_code == 200
        assert NEW_MODEL in listed(tm)
        assert tm.healthz() == 200
    finally:
        code = tm.proc.stop()
    assert code == 0, tm.proc.log_text()


def test_stream_in_flight_across_a_reload_finishes(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    """A stream started before a reload that removes its model completes and is metered; the
    next request for that model is refused."""
    inst = ev.launch(binaries["tailmeter"], tmp_path, sim.base_url)
    tm = inst.tm
    delta = tm.metrics.delta()
    result: dict[str, httpx2.Response] = {}
    body = {"model": "gpt-5-nano", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    def slow_stream() -> None:
        with http_client(cfg.SRC_ALICE) as http:
            result["resp"] = http.post(
                f"{tm.base_url}/v1/chat/completions", json=body,
                headers={**HEADERS, "x-sim-fault": "chunk-bytes=32,chunk-delay-ms=40"},
            )

    try:
        worker = threading.Thread(target=slow_stream, daemon=True)
        worker.start()
        ev.wait_for("the stream in flight", lambda: tm.metrics.value("tailmeter_inflight_requests") == 1, 10)
        write_config(inst, sim, ["gpt-4o", "text-embedding-3-small"])
        ev.hangup_and_wait(inst.tm, "configuration reloaded", 1)
        assert tm.metrics.value("tailmeter_inflight_requests") == 1, "the stream ended before the reload"
        worker.join(30)
        resp = result["resp"]
        assert resp.status_code == 200 and b"[DONE]" in resp.content, resp.content[-300:]
        assert chat(tm, "gpt-5-nano").status_code == 404
        labels = {"identity": cfg.ALICE, "provider": "openai", "model": "gpt-5-nano", "endpoint": "chat_completions", "code": "200"}
        assert delta.now("tailmeter_requests_total", **labels) == 1
    finally:
        tm.proc.stop()


def test_a_reload_of_a_providers_timeouts_does_not_reuse_connections_made_before(
    binaries: dict[str, Path], sim: Sim, tmp_path: Path
) -> None:
    """Provider connections outlive a reload in the pool. One made before a reload that sets
    `first_byte_timeout` apart from `idle_timeout` has no such deadline (it came from Pingora's
    connector, bounded only by the longer of the two); the next request must go over a new
    connection that keeps it, and time out."""
    inst = ev.launch(binaries["tailmeter"], tmp_path, sim.base_url)
    tm = inst.tm
    try:
        assert chat(tm, "gpt-4o").status_code == 200  # leaves a pooled connection
        providers = cfg.standard_providers(sim.base_url)
        providers[0].idle_timeout = "4s"
        text = cfg.render(cfg.TailmeterConfig(tm.listen, tm.admin, providers))
        inst.config.write_text(text.replace('idle_timeout = "4s"\n', 'idle_timeout = "4s"\nfirst_byte_timeout = "1s"\n', 1))
        ev.hangup_and_wait(inst.tm, "configuration reloaded", 1)
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        with http_client(cfg.SRC_ALICE) as http:
            resp = http.post(f"{tm.base_url}/v1/chat/completions", json=body,
                             headers={**HEADERS, "x-sim-fault": "stall-ms=2500"})
        assert resp.status_code == 504, resp.text
        assert resp.json()["error"]["code"] == "upstream_first_byte_timeout", resp.text
    finally:
        tm.proc.stop()

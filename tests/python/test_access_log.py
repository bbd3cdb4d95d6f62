"""The access log: one `info` line per metered request (target `tailmeter::access`) with the
request's id, caller, route, status, tokens, cost and timings, and `RUST_LOG` can turn it off
(docs/operators.md, "Logs")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx2

from harness import config as cfg
from harness.clients import REQUEST_ID, Tailmeter, http_client
from harness.events import CHAT, HEADERS, PROVIDER_ENV, chat
from harness.procs import free_port, start_tailmeter
from harness.sim import Sim


def _whole_chat(http: httpx2.Client, tm: Tailmeter) -> str:
    resp = chat(http, tm)
    assert resp.status_code == 200, resp.text
    return resp.headers[REQUEST_ID]


def _run(binary: Path, workdir: Path, sim: Sim, rust_log: str | None,
         call: Callable[[httpx2.Client, Tailmeter], str] = _whole_chat) -> tuple[str, str]:
    """One request (`call`, returning its id) through a private tailmeter; its request id and the
    whole log."""
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    path = workdir / "tailmeter.toml"
    path.write_text(cfg.render(cfg.TailmeterConfig(listen, admin, cfg.standard_providers(sim.base_url))))
    env = {**PROVIDER_ENV, **({"RUST_LOG": rust_log} if rust_log else {})}
    proc = start_tailmeter(binary, path, workdir, env, ready_at=admin)
    try:
        with http_client(cfg.SRC_ALICE) as http:
            rid = call(http, Tailmeter(proc, listen, admin))
    finally:
        assert proc.stop() == 0  # the end of the process writes out what the access log buffered
    return rid, proc.log_text(limit=10**7)


def test_a_metered_request_writes_one_access_line(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    rid, log = _run(binaries["tailmeter"], tmp_path, sim, None)
    lines = [line for line in log.splitlines() if "tailmeter::access" in line]
    assert len(lines) == 1, lines
    pattern = (
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  INFO tailmeter::access: request "
        rf"request_id={rid} identity={re.escape(cfg.ALICE)} provider=openai model=gpt-4o "
        r"endpoint=chat_completions stream=false status=200 input=\d+ output=\d+ cache_read=\d+ "
        r"cache_write=\d+ reasoning=\d+ cost_usd=[0-9.e-]+ usage_source=\"provider\" "
        r"usage_missing=\"\" duration_ms=\d+\.\d ttft_ms=\d+\.\d$"
    )
    assert re.match(pattern, lines[0]), lines[0]


def test_rust_log_turns_the_access_log_off(binaries: dict[str, Path], sim: Sim, tmp_path: Path) -> None:
    _, log = _run(binaries["tailmeter"], tmp_path, sim, "info,tailmeter::access=off")
    assert "tailmeter::access" not in log
    assert "INFO" in log, "the rest of the info log is still written"


def test_a_client_hanging_up_is_an_access_line_not_an_error(binaries: dict[str, Path], sim: Sim,
                                                            tmp_path: Path) -> None:
    """An Esc in a coding agent is routine: the request's access line says the client left, and
    no error line buries the gateway's real failures."""

    def hang_up(http: httpx2.Client, tm: Tailmeter) -> str:
        body = {**CHAT, "stream": True}
        headers = {**HEADERS, "x-sim-fault": "chunk-delay-ms=200"}
        with http.stream("POST", f"{tm.base_url}/v1/chat/completions", json=body, headers=headers) as resp:
            assert resp.status_code == 200
            next(resp.iter_raw())  # the first event, then hang up
            return resp.headers[REQUEST_ID]

    rid, log = _run(binaries["tailmeter"], tmp_path, sim, None, hang_up)
    lines = [line for line in log.splitlines() if rid in line]
    assert len(lines) == 1 and "tailmeter::access" in lines[0], lines
    assert 'usage_missing="client_disconnect"' in lines[0], lines[0]
    assert " ERROR " not in log, log

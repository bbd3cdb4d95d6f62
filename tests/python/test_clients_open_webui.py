"""Open WebUI (PyPI open-webui) through tailmeter.

Open WebUI runs as its own server, started with the environment block of
docs/clients/open-webui.md (the gateway address filled in) plus what a
closed test machine needs (a temp data dir, no login, offline). Through its
own HTTP API, as its browser front end does, the test signs in, lists the
models (which Open WebUI takes from tailmeter's GET /v1/models: exactly the
granted ones) and chats, streamed and not; each chat must be metered as the
simulator reported it, under the identity of the host Open WebUI runs on.

Open WebUI is large (torch and friends): `.ci/run` installs it into a venv
outside the clone ($TAILMETER_OPEN_WEBUI_VENV, default
/root/.cache/tailmeter-owui-venv). It starts in 10 to 60 seconds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from harness import cli_clients as cc
from harness.clients import Tailmeter, http_client
from harness.config import ALICE, SRC_ALICE, UNGRANTED
from harness.procs import Process, free_port
from harness.sim import Sim
from harness.snippets import env_block
from harness.sse import json_payloads

pytestmark = pytest.mark.slow

DOC = "open-webui.md"
VENV = Path(os.environ.get("TAILMETER_OPEN_WEBUI_VENV", "/root/.cache/tailmeter-owui-venv"))
START_TIMEOUT_S = 240.0
# A closed test machine: keep Open WebUI from reaching out, and from asking for a login.
SANDBOX = {"WEBUI_AUTH": "False", "OFFLINE_MODE": "true", "HF_HUB_OFFLINE": "1", "ENABLE_VERSION_UPDATE_CHECK": "false",
           "ANONYMIZED_TELEMETRY": "false", "DO_NOT_TRACK": "true", "SCARF_NO_ANALYTICS": "true"}


def open_webui_bin() -> Path:
    explicit = os.environ.get("TAILMETER_OPEN_WEBUI_BIN")
    path = Path(explicit) if explicit else VENV / "bin" / "open-webui"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = f"open-webui is not installed at {path}: .ci/run installs it (python3 -m venv {VENV}; pip install open-webui)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def webui(tailmeter_clients: Tailmeter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A running Open WebUI pointed at tailmeter: its base URL and a signed-in token."""
    binary = open_webui_bin()
    workdir = tmp_path_factory.mktemp("open-webui")
    port = free_port()
    env = cc.sandbox_env(workdir, {**env_block(DOC, "open-webui.env", tailmeter_clients.base_url), **SANDBOX,
                                   "DATA_DIR": str(workdir / "data"), "PORT": str(port)})
    proc = Process("open-webui", [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)],
                   workdir / "open-webui.log", workdir, env)
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    try:
        with httpx2.Client(timeout=5.0, trust_env=False) as http:
            while True:
                assert proc.alive(), proc.describe_failure("exited during start")
                assert time.monotonic() - start < START_TIMEOUT_S, proc.describe_failure("not healthy in time")
                try:
                    if http.get(f"{base}/health").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                time.sleep(0.5)
            print(f"open-webui healthy after {time.monotonic() - start:.1f}s")
            signin = http.post(f"{base}/api/v1/auths/signin", json={"email": "admin@localhost", "password": "admin"})
            assert signin.status_code == 200, signin.text
        yield base, signin.json()["token"]
    finally:
        proc.stop()


def api(webui: tuple[str, str], timeout: float = 60.0) -> httpx2.Client:
    base, token = webui
    return httpx2.Client(base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=timeout, trust_env=False)


def test_model_list_is_what_tailmeter_grants(tailmeter_clients: Tailmeter, webui: tuple[str, str]) -> None:
    """Exactly the models tailmeter lists for Open WebUI's host: granted, and callable through the
    OpenAI-style endpoints (the Anthropic ones are listed to Anthropic clients)."""
    with api(webui) as http:
        resp = http.get("/api/models")
    assert resp.status_code == 200, resp.text
    ids = {m["id"] for m in resp.json()["data"]}
    with http_client(SRC_ALICE) as http:
        listed = {m["id"] for m in http.get(f"{tailmeter_clients.base_url}/v1/models").json()["data"]}
    assert ids == listed, (ids, listed)
    assert "gpt-4o" in ids and not ids & set(UNGRANTED.values()), ids


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
def test_chat_is_metered(tailmeter_clients: Tailmeter, synth_sim: Sim, webui: tuple[str, str], stream: bool) -> None:
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    body = {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "Hello from Open WebUI"}]}
    with api(webui) as http:
        resp = http.post("/api/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    if stream:
        text = "".join(
            c["choices"][0]["delta"].get("content") or ""
            for c in json_payloads(resp.content) if c.get("choices")
        )
    else:
        text = resp.json()["choices"][0]["message"]["content"]
    assert text.endswith("Hello from Open WebUI"), text
    reqs = [r for r in cc.since(synth_sim, mark) if r.target == "/v1/chat/completions"]
    assert len(reqs) == 1, [r.target for r in cc.since(synth_sim, mark)]
    print("open-webui upstream user agent:", reqs[0].header("user-agent"), json.dumps(cc.sim_usage(reqs[0]).by_type()))
    cc.expect_metered(delta, ALICE, "openai", reqs)
    cc.expect_events(tailmeter_clients, start_ms, ALICE, "openai", reqs)


def test_image_generation_is_metered(tailmeter_clients: Tailmeter, synth_sim: Sim, webui: tuple[str, str]) -> None:
    """Open WebUI's image generation (the env block's `IMAGE_GENERATION_MODEL`) through the gateway:
    `/v1/images/generations`, metered to the token."""
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    with api(webui) as http:
        resp = http.post("/api/v1/images/generations", json={"prompt": "A lighthouse at dusk"})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()) == 1, resp.text
    reqs = cc.since(synth_sim, mark)
    assert [(r.target, r.model) for r in reqs] == [("/v1/images/generations", "gpt-image-1")]
    cc.expect_metered(delta, ALICE, "openai", reqs)
    cc.expect_events(tailmeter_clients, start_ms, ALICE, "openai", reqs)


def test_voice_input_and_read_aloud_go_through_the_gateway(tailmeter_clients: Tailmeter, synth_sim: Sim,
                                                          webui: tuple[str, str]) -> None:
    """A recording of half a MiB, which Open WebUI streams to `/v1/audio/transcriptions` chunked as
    it reads the file, is transcribed and metered to the token; read-aloud (`/v1/audio/speech`) is
    answered with the audio and recorded without figures (the speech answer has none)."""
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    recording = b"RIFF" + bytes(range(256)) * 2048
    with api(webui) as http:
        heard = http.post("/api/v1/audio/transcriptions", files={"file": ("memo.wav", recording, "audio/wav")})
        assert heard.status_code == 200, heard.text
        assert heard.json()["text"].startswith("Transcript of"), heard.text
        spoken = http.post("/api/v1/audio/speech", json={"input": "Dinner is ready.", "voice": "alloy"})
        assert spoken.status_code == 200, spoken.text
        assert len(spoken.content) > 1000
    reqs = cc.since(synth_sim, mark)
    assert [(r.target, r.model) for r in reqs] == [("/v1/audio/transcriptions", "gpt-4o-transcribe"),
                                                   ("/v1/audio/speech", "gpt-4o-mini-tts")]
    heard_req, spoken_req = reqs
    assert heard_req.body_len > len(recording)
    # Streamed to the gateway chunked, forwarded whole with a Content-Length.
    assert heard_req.header("content-length") == [str(heard_req.body_len)]
    cc.expect_metered(delta, ALICE, "openai", [heard_req])
    rows = cc.event_rows(tailmeter_clients, start_ms, 2)
    assert sorted((r["model"], r["endpoint"], r["usage_source"]) for r in rows) == [
        ("gpt-4o-mini-tts", "audio", "none"), ("gpt-4o-transcribe", "audio", "provider")]

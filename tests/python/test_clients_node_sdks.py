"""The JavaScript SDKs self-hosted apps are built on, through tailmeter: `openai`,
`@anthropic-ai/sdk`, `@google/genai` and the Vercel AI SDK (`ai` with its OpenAI, Anthropic and
Google providers), each streaming and not, run by `tests/node/sdk_calls.mjs` under Node.

Node's fetch (undici) is a different HTTP client from the Python SDKs' httpx; what each SDK
handed the app must be what the simulator reported and what tailmeter counted, per call, in
/metrics and in the event rows; a client that did not ask for a chat stream's usage must not
see the usage chunk tailmeter asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import cli_clients as cc
from harness.clients import Tailmeter
from harness.config import ALICE
from harness.metrics import Usage
from harness.sim import Sim

SCRIPT = Path(__file__).resolve().parents[1] / "node" / "sdk_calls.mjs"
# What .ci/run installs for this test, beside the CLI clients.
SDKS = ("openai", "@anthropic-ai/sdk", "@google/genai", "ai", "@ai-sdk/openai", "@ai-sdk/anthropic",
        "@ai-sdk/google")
PROVIDER_OF = {"messages": "anthropic", "generate_content": "gemini"}


def node_and_sdks() -> str:
    """The `node` binary, with every SDK installed under the npm prefix; missing: a failure under
    CI (which installs them), a skip elsewhere."""
    node = shutil.which("node")
    missing = [sdk for sdk in SDKS if not (cc.NPM_PREFIX / "node_modules" / sdk / "package.json").is_file()]
    if node and not missing:
        return node
    message = f"node and the SDKs {missing} under {cc.NPM_PREFIX} are needed (.ci/run installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_javascript_sdks_see_and_are_metered_what_the_provider_reported(
    tailmeter_clients: Tailmeter, synth_sim: Sim, tmp_path: Path
) -> None:
    node = node_and_sdks()
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_PROXY": "*"}
    done = subprocess.run([node, str(SCRIPT), tailmeter_clients.base_url, str(cc.NPM_PREFIX)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [c for c in calls if "error" in c]
    assert calls and not failed, failed or done.stderr[-3000:]

    reqs = cc.since(synth_sim, mark)
    assert len(reqs) == len(calls), [r.target for r in reqs]
    for call, req in zip(calls, reqs):
        billed = cc.sim_usage(req)
        if call["name"] == "openai chat stream, no usage asked":
            assert call["usage"] is None, "the client saw the usage chunk tailmeter asked for"
            assert billed.output > 0, "tailmeter did not ask the provider for the stream's usage"
            continue
        assert Usage(**call["usage"]) == billed, f"{call['name']}: the SDK saw other figures than {req.target}"
    provider_of = lambda req: PROVIDER_OF.get(cc.endpoint_of(req), "openai")  # noqa: E731
    for provider in ("openai", "anthropic", "gemini"):
        cc.expect_metered(delta, ALICE, provider, [r for r in reqs if provider_of(r) == provider])
    cc.expect_events(tailmeter_clients, start_ms, ALICE, provider_of, reqs)

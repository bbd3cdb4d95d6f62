"""Gemini CLI (npm @google/gemini-cli), `gemini -p`, through tailmeter.

The settings file and the environment are docs/clients/gemini-cli.md's blocks with the gateway
address filled in. The CLI speaks the Gemini API with its key in `x-goog-api-key`: the answer
streamed over SSE (`:streamGenerateContent?alt=sse`, tools declared, thinking on), and in its
default `auto` mode a `:generateContent` call first that asks a small model for JSON under a
schema (how hard the prompt is). The simulator synthesizes each answer and records the usage it
reported, which tailmeter must have counted exactly, thinking tokens included. A model the
gateway lacks or does not grant must end the run with a message that says what to change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import PROVIDER_GEMINI_KEY
from harness import cli_clients as cc
from harness.clients import Tailmeter
from harness.config import ALICE, UNGRANTED
from harness.metrics import Expect
from harness.sim import Sim
from harness.snippets import env_block, snippet

pytestmark = pytest.mark.slow

DOC = "gemini-cli.md"
PROMPT = "Say hello to the gateway"
# The pinned CLI's own choices in `auto` mode (docs/clients/gemini-cli.md).
ROUTER_MODEL, AUTO_MODEL = "gemini-3.5-flash-lite", "gemini-3.8-flash"


@pytest.fixture(scope="module")
def gemini() -> Path:
    return cc.npm_client("gemini", "TAILMETER_GEMINI_CLI_BIN")


def run_gemini(gemini: Path, tmp_path: Path, tm: Tailmeter, model: str | None = None, base_suffix: str = "") -> cc.Run:
    """`gemini -p` with the doc's settings and environment; `model` replaces the settings' model
    (`auto`: the CLI picks), `base_suffix` is appended to the base URL."""
    settings = json.loads(snippet(DOC, "gemini-settings.json", tm.base_url))
    if model is not None:
        settings["model"]["name"] = model
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".gemini").mkdir(parents=True)
    work.mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    # The CLI writes error reports to the temporary directory: the test's own.
    env = {**env_block(DOC, "gemini-cli.env", tm.base_url), "GEMINI_CLI_TRUST_WORKSPACE": "true",
           "GEMINI_TELEMETRY_ENABLED": "false", "TMPDIR": str(tmp_path)}
    env["GOOGLE_GEMINI_BASE_URL"] += base_suffix
    return cc.run([str(gemini), "-p", PROMPT], cc.sandbox_env(home, env), cwd=work)


def check_run(result: cc.Run, reqs: list) -> None:
    assert result.returncode == 0, result.describe()
    assert f"simulated reply from provider-sim to: {PROMPT}" in result.stdout, result.describe()
    assert reqs, "Gemini CLI sent nothing upstream"
    for req in reqs:
        assert req.header("user-agent")[0].startswith("GeminiCLI"), req.headers
        assert req.header("x-goog-api-key") == [PROVIDER_GEMINI_KEY], req.headers
    assert any(cc.sim_usage(r).reasoning > 0 for r in reqs), "no thinking reported"


@pytest.mark.parametrize("model", [None, "auto"], ids=["named-model", "auto"])
def test_prompt_is_metered_with_thinking(
    tailmeter_clients: Tailmeter, synth_sim: Sim, gemini: Path, tmp_path: Path, model: str | None
) -> None:
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    result = run_gemini(gemini, tmp_path, tailmeter_clients, model)
    reqs = cc.since(synth_sim, mark)
    check_run(result, reqs)
    targets = [r.target for r in reqs]
    if model is None:
        assert targets == ["/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"], targets
    else:
        assert targets == [f"/v1beta/models/{ROUTER_MODEL}:generateContent",
                           f"/v1beta/models/{AUTO_MODEL}:streamGenerateContent?alt=sse"], targets
    cc.expect_metered(delta, ALICE, "gemini", reqs)
    cc.expect_events(tailmeter_clients, start_ms, ALICE, "gemini", reqs)


@pytest.mark.parametrize(
    ("model", "words"),
    [(UNGRANTED["gemini"], ["is not granted model", "gemini-2.5-flash"]),
     ("gemini-nope", ["is not configured", "gemini-2.5-flash"])],
    ids=["not-granted", "not-configured"],
)
def test_bad_model_names_the_fix(
    tailmeter_clients: Tailmeter, gemini: Path, tmp_path: Path, model: str, words: list[str]
) -> None:
    result = run_gemini(gemini, tmp_path, tailmeter_clients, model)
    assert result.returncode != 0, result.describe()
    for word in words:
        assert word in result.stderr + result.stdout, result.describe()


def test_wrong_base_url_names_the_fix(tailmeter_clients: Tailmeter, gemini: Path, tmp_path: Path) -> None:
    """`/v1beta` on the end of GOOGLE_GEMINI_BASE_URL (the CLI adds its own)."""
    result = run_gemini(gemini, tmp_path, tailmeter_clients, base_suffix="/v1beta")
    assert result.returncode != 0, result.describe()
    for word in ["base URL is set wrong", "GOOGLE_GEMINI_BASE_URL", "no /v1beta"]:
        assert word in result.stderr + result.stdout, result.describe()


def test_spent_budget_ends_the_run_with_its_message(spent_budget: Tailmeter, gemini: Path, tmp_path: Path) -> None:
    """A budget spent for the day is a 429 whose RetryInfo says when it resets: the CLI stops at
    once with tailmeter's message instead of retrying for minutes."""
    assert run_gemini(gemini, tmp_path / "first", spent_budget).returncode == 0  # spends the budget
    delta = spent_budget.metrics.delta()
    result = run_gemini(gemini, tmp_path / "second", spent_budget)
    assert result.returncode != 0, result.describe()
    for word in ['budget "alice-tiny"', "is exhausted", "Suggested retry after"]:
        assert word in result.stderr + result.stdout, result.describe()
    who = {"identity": ALICE, "provider": "gemini", "model": "gemini-2.5-flash"}
    delta.expect([Expect("tailmeter_requests_total", {**who, "code": "429"}, 1)])  # no retries

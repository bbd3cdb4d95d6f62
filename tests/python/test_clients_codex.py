"""Codex CLI (npm @openai/codex), `codex exec`, through tailmeter.

The config.toml and the environment are docs/clients/codex.md's blocks with
the gateway address filled in. Codex speaks the Responses API (streamed,
`store: false`, tools, reasoning, encrypted reasoning content); the simulator
synthesizes each answer and records the usage it reported, which tailmeter
must have counted exactly, reasoning tokens included. The bad settings a user
makes (base URL with /v1 twice or without it, a model the gateway lacks or
does not grant) must end with a message that says what to change.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from harness import cli_clients as cc
from harness.clients import Tailmeter
from harness.config import ALICE, UNGRANTED
from harness.metrics import Expect
from harness.sim import Sim
from harness.snippets import env_block, snippet

pytestmark = pytest.mark.slow

DOC = "codex.md"
PROMPT = "Say hello to the gateway"
# Error runs only: no retries, so a refusal ends the run at once (Codex retries 4xx answers).
NO_RETRIES = "request_max_retries = 0\nstream_max_retries = 0\n"


@pytest.fixture(scope="module")
def codex() -> Path:
    return cc.npm_client("codex", "TAILMETER_CODEX_BIN")


def run_codex(
    codex: Path, tmp_path: Path, tm: Tailmeter, *, base_suffix: str = "/v1", model: str | None = None,
    extra_toml: str = "",
) -> cc.Run:
    """`codex exec` with the doc's config; `base_suffix` replaces the /v1 the doc's base_url ends
    in, `model` the doc's model, and `extra_toml` is appended to the provider's table."""
    config = snippet(DOC, "codex-config.toml", tm.base_url)
    config = config.replace(f'base_url = "{tm.base_url}/v1"', f'base_url = "{tm.base_url}{base_suffix}"')
    if model is not None:
        config = re.sub(r'^model = ".*"$', f'model = "{model}"', config, count=1, flags=re.M)
    codex_home, work, home = tmp_path / "codex-home", tmp_path / "work", tmp_path / "home"
    for directory in (codex_home, work, home):
        directory.mkdir(parents=True)
    (codex_home / "config.toml").write_text(config + extra_toml)
    env = {**env_block(DOC, "codex.env", tm.base_url), "CODEX_HOME": str(codex_home)}
    argv = [str(codex), "exec", "--skip-git-repo-check", PROMPT]
    return cc.run(argv, cc.sandbox_env(home, env), cwd=work)


def test_exec_is_metered_with_reasoning(
    tailmeter_clients: Tailmeter, synth_sim: Sim, codex: Path, tmp_path: Path
) -> None:
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    result = run_codex(codex, tmp_path, tailmeter_clients)
    assert result.returncode == 0, result.describe()
    assert f"simulated reply from provider-sim to: {PROMPT}" in result.stdout, result.describe()
    reqs = cc.since(synth_sim, mark)
    assert reqs, "Codex sent nothing upstream"
    for req in reqs:
        assert req.target == "/v1/responses", req.target
        assert req.header("user-agent")[0].startswith("codex_exec/"), req.headers
        assert req.header("authorization") == [f"Bearer {synth_sim.openai_key}"]
    assert all(cc.sim_usage(r).reasoning > 0 for r in reqs)
    cc.expect_metered(delta, ALICE, "openai", reqs)
    cc.expect_events(tailmeter_clients, start_ms, ALICE, "openai", reqs)


@pytest.mark.parametrize(
    ("base_suffix", "words"),
    [("/v1/v1", ["/v1 twice", "exactly one /v1"]), ("", ["exactly one /v1"])],
    ids=["v1-twice", "no-v1"],
)
def test_wrong_base_url_names_the_fix(
    tailmeter_clients: Tailmeter, codex: Path, tmp_path: Path, base_suffix: str, words: list[str]
) -> None:
    result = run_codex(codex, tmp_path, tailmeter_clients, base_suffix=base_suffix, extra_toml=NO_RETRIES)
    assert result.returncode != 0, result.describe()
    for word in words:
        assert word in result.stderr + result.stdout, result.describe()


@pytest.mark.parametrize(
    ("model", "words"),
    [(UNGRANTED["openai"], ["is not granted model", "gpt-5-nano"]), ("gpt-nope", ["is not configured", "gpt-5-nano"])],
    ids=["not-granted", "not-configured"],
)
def test_bad_model_names_the_fix(
    tailmeter_clients: Tailmeter, codex: Path, tmp_path: Path, model: str, words: list[str]
) -> None:
    result = run_codex(codex, tmp_path, tailmeter_clients, model=model, extra_toml=NO_RETRIES)
    assert result.returncode != 0, result.describe()
    for word in words:
        assert word in result.stderr + result.stdout, result.describe()


def test_spent_budget_ends_the_run_at_once(spent_budget: Tailmeter, codex: Path, tmp_path: Path) -> None:
    """A budget spent for the day is a 429 of OpenAI's `insufficient_quota` type, which Codex
    does not retry: it ends at once, in its own words for any quota error (the doc points to
    /tailmeter/whoami for which budget and when it resets). Another type has Codex retry, and
    wait out the hours of `retry-after`."""
    assert run_codex(codex, tmp_path / "first", spent_budget).returncode == 0  # spends the budget
    delta = spent_budget.metrics.delta()
    result = run_codex(codex, tmp_path / "second", spent_budget)
    assert result.returncode != 0, result.describe()
    assert "Quota exceeded" in result.stderr + result.stdout, result.describe()
    who = {"identity": ALICE, "provider": "openai"}
    delta.expect([Expect("tailmeter_requests_total", {**who, "code": "429"}, 1)])

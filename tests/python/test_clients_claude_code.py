"""Claude Code (npm @anthropic-ai/claude-code), non-interactive, through tailmeter.

Each run is `claude -p … --output-format json` in a fresh HOME, set up the two
ways docs/clients/claude-code.md gives (its blocks are the inputs: a settings
file with an apiKeyHelper, or the environment). A third block runs it in its
Bedrock mode against a `bedrock` provider. The simulator synthesizes
every answer (thinking, tools, prompt caching as Claude Code asks for them)
and records the usage it reported; tailmeter's /metrics and event rows must
carry exactly those figures, cache tokens included, under the caller's
identity, and the event rows Claude Code's user agent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import PROVIDER_BEDROCK_KEY
from harness import cli_clients as cc
from harness.clients import Tailmeter
from harness.config import ALICE, UNGRANTED
from harness.metrics import Expect
from harness.sim import Sim
from harness.snippets import env_block, snippet

pytestmark = pytest.mark.slow

DOC = "claude-code.md"
MODEL = "claude-sonnet-4-5"
PROMPT = "Reply with the word pong"


@pytest.fixture(scope="module")
def claude() -> Path:
    return cc.npm_client("claude", "TAILMETER_CLAUDE_BIN")


def settings_home(home: Path, tm: Tailmeter) -> None:
    """HOME with ~/.claude/settings.json from the doc."""
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(snippet(DOC, "claude-settings.json", tm.base_url))


def run_claude(claude: Path, home: Path, env: dict[str, str], *args: str) -> tuple[cc.Run, dict]:
    """One `claude -p` run in `home`; its JSON result."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [str(claude), "-p", PROMPT, "--output-format", "json", *args]
    result = cc.run(argv, cc.sandbox_env(home, env), cwd=home)
    try:
        parsed = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"no JSON result\n{result.describe()}") from None
    return result, parsed


def check_metered(tm: Tailmeter, sim: Sim, mark: int, start_ms: int, delta) -> list:
    """The requests since `mark` are Claude Code's, and tailmeter counted exactly what the
    simulator reported for them, in /metrics and (when the sink is built in) in event rows."""
    reqs = cc.since(sim, mark)
    assert reqs, "Claude Code sent nothing upstream"
    for req in reqs:
        assert req.target.startswith("/v1/messages"), req.target
        assert req.header("user-agent")[0].startswith("claude-cli/"), req.headers
        assert not req.header("authorization"), "a client credential reached the provider"
        assert req.header("x-api-key") == [sim.anthropic_key]
    cc.expect_metered(delta, ALICE, "anthropic", reqs)
    cc.expect_events(tm, start_ms, ALICE, "anthropic", reqs)
    return reqs


def test_environment_setup(tailmeter_clients: Tailmeter, synth_sim: Sim, claude: Path, tmp_path: Path) -> None:
    env = env_block(DOC, "claude-code.env", tailmeter_clients.base_url)
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    result, out = run_claude(claude, tmp_path / "home", env)
    assert result.returncode == 0 and not out["is_error"], result.describe()
    assert "pong" in out["result"], out["result"]
    reqs = check_metered(tailmeter_clients, synth_sim, mark, start_ms, delta)
    main = [r for r in reqs if r.model == MODEL]
    assert main, [r.model for r in reqs]
    # Claude Code's own account of the session agrees with the provider's (and so tailmeter's).
    usage = out["modelUsage"][MODEL]
    reported = [cc.sim_usage(r) for r in main]
    assert usage["cacheCreationInputTokens"] == sum(u.cache_write for u in reported) > 0
    assert usage["outputTokens"] == sum(u.output for u in reported)


def test_settings_file_with_key_helper_reads_the_cache(
    tailmeter_clients: Tailmeter, synth_sim: Sim, claude: Path, tmp_path: Path
) -> None:
    """Two prompts with the same settings: the second reads the system prompt from the cache."""
    home = tmp_path / "home"
    settings_home(home, tailmeter_clients)
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    for _ in range(2):
        result, out = run_claude(claude, home, {})
        assert result.returncode == 0 and not out["is_error"], result.describe()
    reqs = check_metered(tailmeter_clients, synth_sim, mark, start_ms, delta)
    last = cc.sim_usage([r for r in reqs if r.model == MODEL][-1])
    assert last.cache_read > 0, f"second prompt read nothing from the cache: {last}"


def test_ungranted_model_names_the_fix(tailmeter_clients: Tailmeter, claude: Path, tmp_path: Path) -> None:
    env = env_block(DOC, "claude-code.env", tailmeter_clients.base_url)
    result, out = run_claude(claude, tmp_path / "home", env, "--model", UNGRANTED["anthropic"])
    assert result.returncode != 0 and out["is_error"], result.describe()
    text = out["result"]
    assert "403" in text and "not granted" in text and MODEL in text, text


def test_unconfigured_model_names_the_model(tailmeter_clients: Tailmeter, claude: Path, tmp_path: Path) -> None:
    """A 404 for the model is worded by Claude Code itself; it names the model and --model."""
    env = env_block(DOC, "claude-code.env", tailmeter_clients.base_url)
    result, out = run_claude(claude, tmp_path / "home", env, "--model", "claude-not-configured-1")
    assert result.returncode != 0 and out["is_error"], result.describe()
    assert "claude-not-configured-1" in out["result"] and "--model" in out["result"], out["result"]


def test_base_url_with_v1_names_the_fix(tailmeter_clients: Tailmeter, claude: Path, tmp_path: Path) -> None:
    """ANTHROPIC_BASE_URL ending in /v1 (the usual copy from an OpenAI setup)."""
    env = env_block(DOC, "claude-code.env", tailmeter_clients.base_url)
    env["ANTHROPIC_BASE_URL"] += "/v1"
    result, out = run_claude(claude, tmp_path / "home", env)
    assert result.returncode != 0 and out["is_error"], result.describe()
    text = out["result"]
    assert "/v1 twice" in text and "ANTHROPIC_BASE_URL" in text, text


def test_bedrock_mode(tailmeter_clients: Tailmeter, synth_sim: Sim, claude: Path, tmp_path: Path) -> None:
    """Claude Code in its Bedrock mode (the doc's Bedrock block): InvokeModelWithResponseStream
    with Bedrock's model ids, no AWS signature, metered under the `bedrock` provider."""
    env = env_block(DOC, "claude-code-bedrock.env", tailmeter_clients.base_url)
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    result, out = run_claude(claude, tmp_path / "home", env)
    assert result.returncode == 0 and not out["is_error"], result.describe()
    assert "pong" in out["result"], out["result"]
    reqs = cc.since(synth_sim, mark)
    assert reqs, "Claude Code sent nothing upstream"
    for req in reqs:
        assert req.target.startswith("/model/") and "/invoke" in req.target, req.target
        assert req.header("user-agent")[0].startswith("claude-cli/"), req.headers
        assert req.header("authorization") == [f"Bearer {PROVIDER_BEDROCK_KEY}"], req.headers
    assert env["ANTHROPIC_MODEL"] in {r.model for r in reqs}, [r.model for r in reqs]
    cc.expect_metered(delta, ALICE, "bedrock", reqs)
    cc.expect_events(tailmeter_clients, start_ms, ALICE, "bedrock", reqs)


def test_spent_budget_ends_the_run_with_its_message(spent_budget: Tailmeter, claude: Path, tmp_path: Path) -> None:
    """A budget spent for the day is a 429 that says when it resets: Claude Code shows
    tailmeter's message instead of retrying."""
    env = env_block(DOC, "claude-code.env", spent_budget.base_url)
    result, out = run_claude(claude, tmp_path / "first", env)  # spends the budget
    assert result.returncode == 0 and not out["is_error"], result.describe()
    delta = spent_budget.metrics.delta()
    result, out = run_claude(claude, tmp_path / "second", env)
    assert result.returncode != 0 and out["is_error"], result.describe()
    assert 'budget "alice-tiny"' in out["result"] and "resets at" in out["result"], out["result"]
    who = {"identity": ALICE, "provider": "anthropic"}
    delta.expect([Expect("tailmeter_requests_total", {**who, "code": "429"}, 1)])  # no retries

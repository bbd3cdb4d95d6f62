"""Real client programs (Claude Code, Codex, Gemini CLI) run against tailmeter, and the
checks every client test shares: what the simulator answered must be what
tailmeter counted, in /metrics and in the event rows.

The npm clients live outside the clone (`.ci/run` installs them under
$TAILMETER_NPM_PREFIX, default /root/.cache/tailmeter-npm). Each run gets a
fresh HOME, a minimal environment (no proxy, no provider keys from outside,
telemetry and updates off), closed stdin and a bounded time; on timeout its
whole process group is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from .clients import Tailmeter
from .metrics import TOKEN_TYPES, Delta, Expect, Usage
from .sim import Sim, SimRequest

NPM_PREFIX = Path(os.environ.get("TAILMETER_NPM_PREFIX", "/root/.cache/tailmeter-npm"))
RUN_TIMEOUT_S = 120.0
# Keep the clients to the gateway: no telemetry, update checks or error reports.
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "NO_PROXY": "*",
}


def npm_client(name: str, env_var: str) -> Path:
    """The installed client `name`: `$env_var`, else $TAILMETER_NPM_PREFIX/node_modules/.bin/NAME.
    Missing: a failure under CI (which installs it), a skip elsewhere."""
    explicit = os.environ.get(env_var)
    path = Path(explicit) if explicit else NPM_PREFIX / "node_modules" / ".bin" / name
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = (
        f"{name} is not installed at {path}: run `npm install --prefix {NPM_PREFIX} "
        f"@anthropic-ai/claude-code @openai/codex @google/gemini-cli` (as .ci/run does) or set {env_var}"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def sandbox_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment with HOME at `home`, the quiet switches, then `extra`."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(HOME=str(home), TERM="dumb", **QUIET)
    env.update(extra)
    return env


@dataclass
class Run:
    """A finished client run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"`{' '.join(self.argv)}` exited {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout[-5000:]}\n--- stderr ---\n{self.stderr[-5000:]}"
        )


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float = RUN_TIMEOUT_S) -> Run:
    """Run a client to the end (stdin closed), killing its process group past `timeout_s`."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        done = Run(argv, -9, stdout, stderr, time.monotonic() - start)
        raise AssertionError(f"client timed out after {timeout_s}s\n{done.describe()}") from None
    return Run(argv, proc.returncode, stdout, stderr, time.monotonic() - start)


# tailmeter's `endpoint` label of each upstream path, by how the path ends (Gemini's and
# Bedrock's name the model before their action).
ENDPOINTS = {
    "/v1/chat/completions": "chat_completions",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/images/generations": "images",
    "/v1/images/edits": "images",
    "/v1/audio/speech": "audio",
    "/v1/audio/transcriptions": "audio",
    "/v1/audio/translations": "audio",
    "/v1/messages": "messages",
    ":generateContent": "generate_content",
    ":streamGenerateContent": "generate_content",
    "/invoke": "invoke",
    "/invoke-with-response-stream": "invoke",
}


def endpoint_of(req: SimRequest) -> str:
    """The endpoint label tailmeter gives the request the simulator received."""
    path = req.target.split("?", 1)[0]
    return next(label for end, label in ENDPOINTS.items() if path.endswith(end))


def sim_usage(req: SimRequest) -> Usage:
    """The usage the simulator reported for one synthesized answer."""
    raw = req.raw.get("usage")
    assert raw is not None, f"simulator answered {req.target} without synthesized usage (not --synthesize?)"
    return Usage(**{t: raw[t] for t in TOKEN_TYPES})


def since(sim: Sim, mark: int) -> list[SimRequest]:
    """The requests the simulator recorded after it had recorded `mark` of them."""
    return sim.requests()[mark:]


def expect_metered(delta: Delta, identity: str, provider: str, reqs: list[SimRequest]) -> None:
    """Every token figure, per model, moved by the sum of what the simulator reported for `reqs`,
    and each was counted once as a 200 on its endpoint."""
    per_model: dict[str, list[Usage]] = defaultdict(list)
    per_endpoint: Counter[tuple[str, str]] = Counter()
    for req in reqs:
        per_model[req.model or ""].append(sim_usage(req))
        per_endpoint[(req.model or "", endpoint_of(req))] += 1
    expects = []
    for model, usages in per_model.items():
        who = {"identity": identity, "provider": provider, "model": model}
        for t in TOKEN_TYPES:
            expects.append(Expect("tailmeter_tokens_total", {**who, "type": t}, sum(getattr(u, t) for u in usages)))
    for (model, endpoint), count in per_endpoint.items():
        labels = {"identity": identity, "provider": provider, "model": model, "endpoint": endpoint, "code": "200"}
        expects.append(Expect("tailmeter_requests_total", labels, count))
    delta.expect(expects)


def event_dir(tm: Tailmeter) -> Path:
    """Where the embedded event sink of `tm` writes (its `[events] dir` default, in its workdir)."""
    return tm.proc.log_path.parent / "tailmeter-data"


def event_rows(tm: Tailmeter, since_ms: int, expect: int, timeout_s: float = 10.0) -> list[dict]:
    """The event rows of requests started at or after `since_ms`, waiting (bounded) for `expect` of
    them (the sink writes in batches)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = []
        for path in sorted(event_dir(tm).glob("*.jsonl")):
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if _ts_ms(r) >= since_ms]
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _ts_ms(row: dict) -> int:
    """A row's start time in ms since the epoch (`ts_ms`, or `ts` as a number or UTC text)."""
    if "ts_ms" in row:
        return int(row["ts_ms"])
    ts = row.get("ts")
    if isinstance(ts, (int, float)):
        return int(ts)
    parsed = datetime.fromisoformat(str(ts).replace("Z", "+00:00").replace(" ", "T"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def _row_key(identity: str, provider: str, model: str, endpoint: str, usage: Usage, agent: str) -> tuple:
    return (identity, provider, model, endpoint, *usage.by_type().values(), agent)


def expect_events(tm: Tailmeter, since_ms: int, identity: str, provider: str | Callable[[SimRequest], str],
                  reqs: list[SimRequest]) -> None:
    """The event rows since `since_ms` are exactly one per request in `reqs`, each with the
    identity, provider (`provider`, or `provider(request)`), model, endpoint, token figures and
    user agent the simulator saw and reported."""
    provider_of = provider if callable(provider) else lambda _: provider
    rows = event_rows(tm, since_ms, len(reqs))
    got = Counter(
        _row_key(
            r["identity"], r["provider"], r["model"], r["endpoint"],
            Usage(r["input_tokens"], r["output_tokens"], r["cache_read_tokens"], r["cache_write_tokens"],
                  r["reasoning_tokens"]),
            r["user_agent"],
        )
        for r in rows
    )
    want = Counter(
        _row_key(identity, provider_of(req), req.model or "", endpoint_of(req), sim_usage(req),
                 (req.header("user-agent") or [""])[0])
        for req in reqs
    )
    assert got == want, f"event rows in {event_dir(tm)} differ from what the simulator reported:\n  rows: {got}\n  sim:  {want}"

"""A background Response whose usage no client retrieval counts, with the OpenAI Python SDK.

tailmeter retrieves it itself (from 5 s after its creation, with the provider's key) and counts
its usage once, in its creator's name; it keeps what it still has to count across a SIGKILL
(the journal), ends the wait when the provider no longer has the response, and counts every
retrieval by result (`tailmeter_stored_responses_retrievals_total`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import openai
import pytest

from harness import cli_clients as cc
from harness import config as cfg
from harness import tls_front
from harness.clients import Tailmeter, assert_upstream_openai_auth, http_client, openai_client
from harness.config import ALICE, CI_K8S, SRC_ALICE, SRC_CI
from harness.metrics import Expect
from harness.procs import start_sim
from harness.responses import MODEL, created_usage, expect_tokens, response_rows, row_usage
from harness.sim import Sim, new_marker

from conftest import PROVIDER_ANTHROPIC_KEY, PROVIDER_OPENAI_KEY, launch_instance

RETRIEVALS = "tailmeter_stored_responses_retrievals_total"


def restarted_after_a_background_create(binary: Path, synth_sim: Sim, workdir: Path, grants, src: str):
    """An instance SIGKILLed right after `src` created a background response through it, and
    another started in its place on the same files: (the new instance, the response, the marker
    its create call carried, when it was made in ms)."""

    def launch() -> Tailmeter:
        return launch_instance(binary, workdir, cfg.clients_providers(synth_sim.base_url), grants=grants)

    first, marker, start_ms = launch(), new_marker(), int(time.time() * 1000)
    created = openai_client(first, src).responses.create(
        model=MODEL, input="Research this slowly", background=True, extra_headers=marker)
    first.proc.popen.kill()
    first.proc.popen.wait()
    return launch(), created, marker, start_ms


def test_a_killed_gateway_forgets_neither_whose_a_response_is_nor_its_usage(
    binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path
) -> None:
    """The directory is journaled in the `[events] dir` as each change is made: a SIGKILL
    between a background response's creation and its completion loses neither."""
    second, created, marker, start_ms = restarted_after_a_background_create(
        binaries["tailmeter"], synth_sim, tmp_path, cfg.clients_grants(), SRC_ALICE)
    try:
        client = openai_client(second, SRC_ALICE)
        polled = client.responses.retrieve(created.id)
        while polled.status != "completed":
            time.sleep(0.05)
            polled = client.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError, match=f"not created by identity {CI_K8S}"):
            openai_client(second, SRC_CI).responses.retrieve(created.id)
        billed = created_usage(synth_sim, marker)
        rows = response_rows(second, start_ms, 2)
        counted = [r for r in rows if r["usage_source"] == "provider"]
        assert len(counted) == 1 and row_usage(counted[0]) == billed, rows
        assert counted[0]["model"] == MODEL
    finally:
        second.proc.stop()


def settled_rows(tm: Tailmeter, since_ms: int, timeout_s: float = 20.0) -> list[dict]:
    """The rows of tailmeter's own retrievals since `since_ms`, waiting (bounded) for the first:
    the first comes some seconds after the background response was created."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [r for r in response_rows(tm, since_ms, 0) if r["user_agent"].startswith("tailmeter/")]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_a_background_response_nobody_retrieves_is_counted_by_tailmeter(
    tailmeter_clients: Tailmeter, synth_sim: Sim
) -> None:
    """The client created it and went away (or waits for a webhook): tailmeter retrieves it
    itself once it has waited a few seconds, with the provider's key, and counts its usage once,
    for its creator."""
    client = openai_client(tailmeter_clients, SRC_ALICE)
    start_ms, delta, marker = int(time.time() * 1000), tailmeter_clients.metrics.delta(), new_marker()
    pending = lambda: tailmeter_clients.metrics.value("tailmeter_stored_responses_pending")  # noqa: E731
    before = pending()
    mark = len(synth_sim.requests())
    created = client.responses.create(model=MODEL, input="Research this while I am away", background=True,
                                      extra_headers=marker)
    assert created.status == "queued" and pending() == before + 1

    settled = settled_rows(tailmeter_clients, start_ms)
    billed = created_usage(synth_sim, marker)
    assert len(settled) == 1, settled
    row = settled[0]
    assert row_usage(row) == billed, row
    assert (row["identity"], row["src_ip"], row["model"], row["status"], row["usage_source"]) == (
        ALICE, SRC_ALICE, MODEL, 200, "provider"), row
    assert row["response_model"] and row["stream"] == 0
    expect_tokens(delta, billed)
    delta.expect([Expect(RETRIEVALS, {"provider": "openai", "result": "counted"}, 1)])
    assert pending() == before, "counted"
    retrievals = [r for r in cc.since(synth_sim, mark) if r.target.startswith(f"/v1/responses/{created.id}")]
    assert retrievals, "tailmeter retrieved it from the provider"
    for req in retrievals:
        assert_upstream_openai_auth(req, PROVIDER_OPENAI_KEY)

    # The client comes back later: its retrieval sees the figures, and counts nothing again.
    again = client.responses.retrieve(created.id)
    assert (again.status, again.usage.output_tokens) == ("completed", billed.output)
    rows = response_rows(tailmeter_clients, start_ms, 3)
    assert [(r["usage_source"], r["user_agent"].startswith("tailmeter/")) for r in rows] == [
        ("none", False), ("provider", True), ("none", False)], rows
    expect_tokens(delta, billed)


def test_a_background_response_the_provider_lost_or_that_cannot_be_retrieved(
    binaries: dict[str, Path], fixtures_dir: Path, synth_sim: Sim, tmp_path: Path
) -> None:
    """Deleted at the provider behind tailmeter's back: its first retrieval gets the provider's
    404 and the wait ends. A provider that cannot be reached: the retrievals fail, are counted as
    failed (the alert's input), and the usage stays pending, to be counted once it answers."""
    for name in ("gone", "lone", "lone-sim"):
        (tmp_path / name).mkdir()
    tm = launch_instance(binaries["tailmeter"], tmp_path / "gone", cfg.clients_providers(synth_sim.base_url),
                         grants=cfg.clients_grants())
    try:
        delta, start_ms = tm.metrics.delta(), int(time.time() * 1000)
        created = openai_client(tm, SRC_ALICE).responses.create(model=MODEL, input="Delete me elsewhere",
                                                                background=True)
        direct = openai.OpenAI(base_url=f"{synth_sim.base_url}/v1", api_key=PROVIDER_OPENAI_KEY,
                               http_client=http_client("127.0.0.1"), max_retries=0)
        direct.responses.delete(created.id)
        delta.expect([Expect(RETRIEVALS, {"provider": "openai", "result": "gone"}, 1)], timeout_s=20)
        assert tm.metrics.value("tailmeter_stored_responses_pending") == 0
        assert settled_rows(tm, start_ms, timeout_s=0) == []
    finally:
        tm.proc.stop()

    # A provider of its own, stopped once the response is created.
    sim_proc, sim_port = start_sim(binaries["sim"], fixtures_dir, PROVIDER_OPENAI_KEY, PROVIDER_ANTHROPIC_KEY,
                                   tmp_path / "lone-sim", ("--synthesize",))
    lone = launch_instance(binaries["tailmeter"], tmp_path / "lone", cfg.clients_providers(f"http://127.0.0.1:{sim_port}"),
                           grants=cfg.clients_grants())
    try:
        delta = lone.metrics.delta()
        openai_client(lone, SRC_ALICE).responses.create(model=MODEL, input="Nobody will answer", background=True)
        sim_proc.stop()
        delta.expect([Expect(RETRIEVALS, {"provider": "openai", "result": "failed"}, 1)], timeout_s=20)
        assert lone.metrics.value("tailmeter_stored_responses_pending") == 1, "still to count"
    finally:
        lone.proc.stop()
        sim_proc.stop()


def test_a_restarted_gateway_counts_a_background_response_for_its_tagged_creator(
    binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path
) -> None:
    """SIGKILLed after a tagged node created a background response; nobody retrieves it. The
    restarted gateway counts it from its journal, attributed to the node (its tags, its
    address), so the tags' budgets and series see it."""
    second, created, marker, start_ms = restarted_after_a_background_create(
        binaries["tailmeter"], synth_sim, tmp_path, [([ALICE, "tag:ci"], [f"openai/{MODEL}"])], SRC_CI)
    try:
        delta = second.metrics.delta()
        settled = settled_rows(second, start_ms)
        billed = created_usage(synth_sim, marker)
        assert len(settled) == 1 and row_usage(settled[0]) == billed, settled
        row = settled[0]
        assert (row["identity"], row["tags"], row["src_ip"]) == (CI_K8S, ["tag:ci", "tag:k8s"], SRC_CI), row
        delta.expect([
            Expect("tailmeter_tag_tokens_total", {"tag": tag, "model": MODEL, "type": "output"}, billed.output)
            for tag in ("tag:ci", "tag:k8s")
        ])
        assert second.metrics.value("tailmeter_stored_responses_pending") == 0
        assert openai_client(second, SRC_CI).responses.retrieve(created.id).status == "completed"
    finally:
        second.proc.stop()


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_tailmeter_retrieves_over_tls_as_it_proxies(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path,
                                                    http2: bool) -> None:
    """Real providers are reached over HTTPS: tailmeter's own retrieval verifies the provider's
    certificate against the trusted CAs, sends SNI and speaks HTTP/2 where the provider's `http2`
    asks, as proxied requests do (a TLS edge in front of the simulator, harness.tls_front)."""
    missing = tls_front.available()
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    (tmp_path / "edge").mkdir()
    (tmp_path / "tm").mkdir()
    with tls_front.tls_front(tmp_path / "edge", f"127.0.0.1:{synth_sim.port}") as edge:
        providers = cfg.clients_providers(edge.base_url)
        providers[0].http2 = http2
        trusting = lambda argv: ["env", f"SSL_CERT_FILE={edge.ca_bundle}", *argv]  # noqa: E731
        tm = launch_instance(binaries["tailmeter"], tmp_path / "tm", providers, grants=cfg.clients_grants(),
                             wrap=trusting)
        try:
            start_ms, marker = int(time.time() * 1000), new_marker()
            created = openai_client(tm, SRC_ALICE).responses.create(
                model=MODEL, input="Over TLS", background=True, extra_headers=marker)
            settled = settled_rows(tm, start_ms)
            assert len(settled) == 1 and row_usage(settled[0]) == created_usage(synth_sim, marker), settled
        finally:
            tm.proc.stop()
        retrievals = [r for r in edge.requests() if r["uri"].startswith(f"/v1/responses/{created.id}")]
        protocol = "HTTP/2.0" if http2 else "HTTP/1.1"
        assert retrievals and {(r["protocol"], r["sni"], r["status"]) for r in retrievals} == {
            (protocol, "localhost", 200)}, retrievals

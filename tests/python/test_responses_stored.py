"""Stored and background Responses through tailmeter, with the OpenAI Python SDK.

A response the provider stores is named later by id alone (`retrieve`, `cancel`, `delete`,
`input_items.list`), with no model to route by: tailmeter sends it where the response was
created, for its creator only. A background response's usage is not in its create call's
answer (`queued`); it is counted once, on the first request whose answer shows it finished
(a poll, or a resumed stream), or, if no client asks, by tailmeter's own retrieval
(test_responses_background.py). The simulator, in faithful mode, keeps responses the way OpenAI
does and runs a background one for a few hundred milliseconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import Tailmeter, assert_upstream_openai_auth, http_client, openai_client
from harness.config import ALICE, CI_K8S, SRC_ALICE, SRC_CI
from harness.responses import MODEL, ZERO, created_usage, expect_tokens, response_rows, row_usage
from harness.sim import Sim, new_marker

from conftest import PROVIDER_OPENAI_KEY, launch_instance


def test_background_response_is_metered_once_when_a_poll_sees_it_finished(
    tailmeter_clients: Tailmeter, synth_sim: Sim
) -> None:
    client = openai_client(tailmeter_clients, SRC_ALICE)
    start_ms, delta, marker = int(time.time() * 1000), tailmeter_clients.metrics.delta(), new_marker()
    pending = lambda: tailmeter_clients.metrics.value("tailmeter_stored_responses_pending")  # noqa: E731
    before = pending()
    created = client.responses.create(model=MODEL, input="Write a haiku about queues", background=True,
                                      extra_headers=marker)
    assert (created.status, created.usage) == ("queued", None)
    assert pending() == before + 1, "its usage is still to count"
    polled = created
    polls = 0
    while polled.status in ("queued", "in_progress"):
        time.sleep(0.05)
        polled = client.responses.retrieve(created.id)
        polls += 1
    assert polled.status == "completed" and polled.output_text
    assert pending() == before, "counted"
    again = client.responses.retrieve(created.id)
    items = client.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    billed = created_usage(synth_sim, marker)
    assert (polled.usage.input_tokens, polled.usage.output_tokens) == (billed.input, billed.output)
    assert again.usage.output_tokens == billed.output

    rows = response_rows(tailmeter_clients, start_ms, 1 + polls + 2)
    assert len(rows) == 1 + polls + 2, rows
    counted = [r for r in rows if r["usage_source"] == "provider"]
    assert len(counted) == 1 and row_usage(counted[0]) == billed, rows
    assert rows[0]["usage_source"] == "none" and row_usage(rows[0]) == ZERO, "the create call counts nothing yet"
    assert all(row_usage(r) == ZERO for r in rows if r is not counted[0]), rows
    assert {r["model"] for r in rows} == {MODEL} and {r["status"] for r in rows} == {200}
    expect_tokens(delta, billed)
    for req in synth_sim.requests()[-(polls + 2):]:
        assert_upstream_openai_auth(req, PROVIDER_OPENAI_KEY)


def test_background_stream_cut_then_resumed_is_metered_once(tailmeter_clients: Tailmeter, synth_sim: Sim) -> None:
    client = openai_client(tailmeter_clients, SRC_ALICE)
    start_ms, delta, marker = int(time.time() * 1000), tailmeter_clients.metrics.delta(), new_marker()
    # The simulator sends the events slowly, so the client hangs up before the last one passes.
    slow = {**marker, "x-sim-fault": "chunk-delay-ms=40"}
    stream = client.responses.create(model=MODEL, input="Stream a long story", background=True, stream=True,
                                     extra_headers=slow)
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 4:
            break
    stream.close()
    response_id, last = seen[0].response.id, seen[-1].sequence_number
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    assert resumed[0].sequence_number == last + 1
    assert resumed[-1].type == "response.completed"
    usage = resumed[-1].response.usage
    billed = created_usage(synth_sim, marker)
    assert (usage.input_tokens, usage.output_tokens) == (billed.input, billed.output)

    rows = response_rows(tailmeter_clients, start_ms, 2)
    assert [(r["stream"], r["usage_source"]) for r in rows] == [(1, "none"), (1, "provider")], rows
    assert row_usage(rows[0]) == ZERO, "a cut background stream runs on: nothing is estimated"
    assert row_usage(rows[1]) == billed
    expect_tokens(delta, billed)


def test_cancel_input_tokens_and_delete(tailmeter_clients: Tailmeter, synth_sim: Sim) -> None:
    client = openai_client(tailmeter_clients, SRC_ALICE)
    start_ms, delta = int(time.time() * 1000), tailmeter_clients.metrics.delta()
    pending = lambda: tailmeter_clients.metrics.value("tailmeter_stored_responses_pending")  # noqa: E731
    before = pending()
    running = client.responses.create(model=MODEL, input="Think for a long time", background=True)
    cancelled = client.responses.cancel(running.id)
    assert (cancelled.status, cancelled.usage) == ("cancelled", None)
    assert pending() == before, "cancelled with nothing to count: no longer waited for"
    counted = client.responses.input_tokens.count(model=MODEL, input="How many tokens is this?")
    assert counted.input_tokens > 0
    marker = new_marker()
    stored = client.responses.create(model=MODEL, input="Keep this one", extra_headers=marker)
    client.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.retrieve(stored.id)

    rows = response_rows(tailmeter_clients, start_ms, 6)
    assert [(r["endpoint"], r["status"], r["usage_source"]) for r in rows] == [
        ("responses", 200, "none"),  # background create
        ("responses", 200, "none"),  # cancel: no usage reported
        ("count_tokens", 200, "none"),
        ("responses", 200, "provider"),  # stored create
        ("responses", 200, "none"),  # delete
        ("responses", 404, "none"),  # retrieve after delete: the provider's 404
    ], rows
    assert rows[-1]["model"] == "__unknown__", "a deleted response is forgotten"
    billed = created_usage(synth_sim, marker)
    assert row_usage(rows[3]) == billed
    expect_tokens(delta, billed)


def test_another_identity_cannot_open_a_response(
    binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path
) -> None:
    # Both identities may use the model: only whose the response is keeps the other out.
    tm = launch_instance(binaries["tailmeter"], tmp_path, cfg.clients_providers(synth_sim.base_url),
                         grants=[([ALICE, "tag:ci"], [f"openai/{MODEL}"])])
    try:
        alice, other = openai_client(tm, SRC_ALICE), openai_client(tm, SRC_CI)
        created = alice.responses.create(model=MODEL, input="Private notes")
        mark = len(synth_sim.requests())
        # Nor may it continue the conversation, which would show it to the model answering it.
        continued = lambda: other.responses.create(model=MODEL, input="What did I say?",  # noqa: E731
                                                   previous_response_id=created.id)
        for attempt in (lambda: other.responses.retrieve(created.id), lambda: other.responses.delete(created.id),
                        lambda: other.responses.input_items.list(created.id), continued):
            with pytest.raises(openai.NotFoundError) as refused:
                attempt()
            assert f"not created by identity {CI_K8S}" in refused.value.message
        assert cc.since(synth_sim, mark) == [], "another identity's request reached the provider"
        assert alice.responses.retrieve(created.id).status == "completed"
        assert alice.responses.create(model=MODEL, input="Go on", previous_response_id=created.id).status == "completed"
        assert other.responses.create(model=MODEL, input="My own").status == "completed"
    finally:
        tm.proc.stop()


def test_a_response_made_elsewhere_goes_to_the_only_openai_provider(
    tailmeter_clients: Tailmeter, synth_sim: Sim
) -> None:
    """One created before tailmeter started (here: straight at the provider) is still found, and
    its usage, billed to whoever created it, is not counted again."""
    direct = openai.OpenAI(base_url=f"{synth_sim.base_url}/v1", api_key=PROVIDER_OPENAI_KEY,
                           http_client=http_client("127.0.0.1"), max_retries=0)
    made = direct.responses.create(model=MODEL, input="Made before the gateway")
    start_ms, delta = int(time.time() * 1000), tailmeter_clients.metrics.delta()
    client = openai_client(tailmeter_clients, SRC_ALICE)
    assert client.responses.retrieve(made.id).usage.output_tokens == made.usage.output_tokens
    rows = response_rows(tailmeter_clients, start_ms, 1)
    assert [(r["model"], r["status"], r["usage_source"]) for r in rows] == [("__unknown__", 200, "none")]
    expect_tokens(delta, ZERO)
    unplaced = openai_client(tailmeter_clients, SRC_CI)
    with pytest.raises(openai.NotFoundError, match="granted no model of an OpenAI provider"):
        unplaced.responses.retrieve(made.id)


def test_compaction_is_metered_and_its_output_carries_on(tailmeter_clients: Tailmeter, synth_sim: Sim) -> None:
    """`responses.compact` (POST /v1/responses/compact, as Codex and the Agents SDK compact a long
    session) is a model call: metered like any other, and its output is the next call's input."""
    client = openai_client(tailmeter_clients, SRC_ALICE)
    start_ms, delta, marker = int(time.time() * 1000), tailmeter_clients.metrics.delta(), new_marker()
    history = [
        {"role": "user", "content": "Plan a trip to Lisbon " * 200},
        {"role": "assistant", "content": "Day one: Alfama. " * 200},
        {"role": "user", "content": "And day two?"},
    ]
    compacted = client.responses.compact(model=MODEL, input=history, extra_headers=marker)
    assert compacted.object == "response.compaction"
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    billed = created_usage(synth_sim, marker)
    assert (compacted.usage.input_tokens, compacted.usage.output_tokens) == (billed.input, billed.output)
    follow_up = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    follow_up.append({"role": "user", "content": "Now day three."})
    follow_up_marker = new_marker()
    carried_on = client.responses.create(model=MODEL, input=follow_up, store=False, extra_headers=follow_up_marker)
    assert carried_on.status == "completed"

    rows = response_rows(tailmeter_clients, start_ms, 2)
    assert [(r["endpoint"], r["model"], r["usage_source"]) for r in rows] == [
        ("responses", MODEL, "provider"), ("responses", MODEL, "provider")], rows
    billed_after = created_usage(synth_sim, follow_up_marker)
    assert [row_usage(r) for r in rows] == [billed, billed_after]
    expect_tokens(delta, billed + billed_after)

"""Conversations through tailmeter, with the OpenAI Python SDK.

A conversation (`client.conversations`, where the Agents SDK's `OpenAIConversationsSession` keeps
a session) names no model: tailmeter makes it on the caller's one OpenAI provider and sends
every later request naming it (by path, or a Responses call's `conversation`) to the same
provider, for its creator only. Nothing of it is billed; the Responses calls in it are metered
as any other. The simulator, in faithful mode, keeps conversations the way OpenAI does.
"""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import Tailmeter, assert_upstream_openai_auth, openai_client
from harness.config import ALICE, CI_K8S, SRC_ALICE, SRC_CI
from harness.responses import MODEL, ZERO, created_usage, expect_tokens, response_rows, row_usage
from harness.sim import Sim, new_marker

from conftest import PROVIDER_OPENAI_KEY, launch_instance


def test_a_conversation_carries_a_session_and_only_its_calls_are_metered(
    tailmeter_clients: Tailmeter, synth_sim: Sim
) -> None:
    client = openai_client(tailmeter_clients, SRC_ALICE)
    start_ms, delta, mark = int(time.time() * 1000), tailmeter_clients.metrics.delta(), len(synth_sim.requests())
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}], metadata={"topic": "intro"})
    assert conversation.id.startswith("conv_")
    markers = [new_marker(), new_marker()]
    first = client.responses.create(model=MODEL, input="What is my name?", conversation=conversation.id,
                                    store=False, extra_headers=markers[0])
    second = client.responses.create(model=MODEL, input="Say it again.", conversation={"id": conversation.id},
                                     store=False, extra_headers=markers[1])
    assert first.status == second.status == "completed"
    assert second.usage.input_tokens > first.usage.input_tokens, "the provider read the conversation so far"

    items = client.conversations.items.list(conversation.id, order="asc")
    messages = [i for i in items.data if i.type == "message"]
    assert [m.role for m in messages] == ["user", "user", "assistant", "user", "assistant"]
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "Remember: I like tea."}])
    note = added.data[0].id
    assert client.conversations.items.retrieve(note, conversation_id=conversation.id).id == note
    client.conversations.items.delete(note, conversation_id=conversation.id)
    updated = client.conversations.update(conversation.id, metadata={"topic": "names"})
    assert updated.metadata == {"topic": "names"}
    assert client.conversations.retrieve(conversation.id).id == conversation.id
    assert client.conversations.delete(conversation.id).deleted
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.conversations.retrieve(conversation.id)

    billed = [created_usage(synth_sim, m) for m in markers]
    rows = response_rows(tailmeter_clients, start_ms, 11)
    assert [(r["model"], r["usage_source"]) for r in rows] == [
        ("__unknown__", "none"),  # create
        (MODEL, "provider"), (MODEL, "provider"),  # the two calls in it
        *[("__unknown__", "none")] * 8,  # items listed, added, read, deleted; updated, read, deleted, read again
    ], rows
    assert [row_usage(r) for r in rows[1:3]] == billed
    assert all(row_usage(r) == ZERO for r in rows[3:]) and rows[-1]["status"] == 404
    assert {(r["provider"], r["identity"]) for r in rows} == {("openai", ALICE)}
    expect_tokens(delta, billed[0] + billed[1])
    for req in cc.since(synth_sim, mark):
        assert_upstream_openai_auth(req, PROVIDER_OPENAI_KEY)


def test_another_identity_cannot_use_a_conversation_even_after_a_restart(
    binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path
) -> None:
    """The provider key is shared: a conversation id read off a log must show nobody else what
    its creator said, by path or by continuing it. The gateway remembers whose it is across a
    SIGKILL."""

    def launch() -> Tailmeter:
        return launch_instance(binaries["tailmeter"], tmp_path, cfg.clients_providers(synth_sim.base_url),
                               grants=[([ALICE, "tag:ci"], [f"openai/{MODEL}"])])

    first = launch()
    conversation = openai_client(first, SRC_ALICE).conversations.create(
        items=[{"type": "message", "role": "user", "content": "My bank PIN is 1234."}])
    first.proc.popen.kill()
    first.proc.popen.wait()
    tm = launch()
    try:
        alice, other = openai_client(tm, SRC_ALICE), openai_client(tm, SRC_CI)
        mark = len(synth_sim.requests())
        attempts = [
            lambda: other.conversations.retrieve(conversation.id),
            lambda: other.conversations.items.list(conversation.id),
            lambda: other.conversations.items.create(
                conversation.id, items=[{"type": "message", "role": "user", "content": "hi"}]),
            lambda: other.conversations.update(conversation.id, metadata={"x": "y"}),
            lambda: other.conversations.delete(conversation.id),
            lambda: other.responses.create(model=MODEL, input="What is my PIN?", conversation=conversation.id),
            lambda: other.responses.create(model=MODEL, input="What is my PIN?",
                                           conversation={"id": conversation.id}),
        ]
        for attempt in attempts:
            with pytest.raises(openai.NotFoundError) as refused:
                attempt()
            assert f"not created by identity {CI_K8S}" in refused.value.message
            assert refused.value.code == "conversation_not_found"
        assert cc.since(synth_sim, mark) == [], "another identity's request reached the provider"
        items = alice.conversations.items.list(conversation.id).data
        assert "1234" in str(items[0].content)
        assert alice.responses.create(model=MODEL, input="Thanks", conversation=conversation.id).status == "completed"
        assert other.conversations.create().id.startswith("conv_"), "a conversation of its own is fine"
    finally:
        tm.proc.stop()


def test_a_conversation_to_create_with_two_openai_providers_is_refused_naming_them(
    binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path
) -> None:
    """A conversation names no model: with two OpenAI providers to choose from, tailmeter cannot
    tell which the caller means, and says so in OpenAI's format instead of guessing."""
    second = cfg.Provider("openai-eu", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}", ["gpt-5-nano-eu"])
    providers = cfg.clients_providers(synth_sim.base_url) + [second]
    tm = launch_instance(binaries["tailmeter"], tmp_path, providers,
                         grants=[([ALICE], [f"openai/{MODEL}", "openai-eu/gpt-5-nano-eu"])])
    try:
        mark = len(synth_sim.requests())
        with pytest.raises(openai.BadRequestError) as refused:
            openai_client(tm, SRC_ALICE).conversations.create()
        assert refused.value.code == "provider_ambiguous"
        assert "several providers (openai, openai-eu)" in refused.value.message
        assert cc.since(synth_sim, mark) == []
    finally:
        tm.proc.stop()

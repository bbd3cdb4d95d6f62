"""The OpenAI Agents SDK (`openai-agents`) through tailmeter: an agent whose session is kept in a
conversation (`OpenAIConversationsSession`), as apps built on the SDK keep chat history.

The SDK creates the conversation, reads its items before each turn, sends them with the new
input to the Responses API and adds the turn's items back. Every model call is metered exactly;
the conversation's own requests pass through unmetered, for the identity that made it only.
"""

from __future__ import annotations

import asyncio
import time

import httpx2
import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.memory import OpenAIConversationsSession

from harness import cli_clients as cc
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, assert_upstream_openai_auth
from harness.config import ALICE, SRC_ALICE, SRC_CI
from harness.sim import Sim

from conftest import PROVIDER_OPENAI_KEY

MODEL = "gpt-5-nano"


def async_client(tm: Tailmeter, src: str) -> openai.AsyncOpenAI:
    transport = httpx2.AsyncHTTPTransport(local_address=src, trust_env=False)
    return openai.AsyncOpenAI(base_url=f"{tm.base_url}/v1", api_key=CLIENT_OPENAI_KEY, max_retries=0,
                              http_client=httpx2.AsyncClient(transport=transport, trust_env=False, timeout=30.0))


def test_an_agent_session_kept_in_a_conversation(tailmeter_clients: Tailmeter, synth_sim: Sim) -> None:
    # The SDK's tracing exports to api.openai.com, which the tests never reach.
    set_tracing_disabled(True)
    start_ms, delta, mark = int(time.time() * 1000), tailmeter_clients.metrics.delta(), len(synth_sim.requests())

    async def run() -> tuple[str, list]:
        client = async_client(tailmeter_clients, SRC_ALICE)
        agent = Agent(name="helper", instructions="Answer briefly.",
                      model=OpenAIResponsesModel(model=MODEL, openai_client=client))
        session = OpenAIConversationsSession(openai_client=client)
        turns = [await Runner.run(agent, text, session=session)
                 for text in ("My name is Ada.", "What is my name?")]
        assert all(turn.final_output for turn in turns)
        return await session._get_session_id(), await session.get_items()

    conversation, items = asyncio.run(run())
    assert [i.get("role") for i in items if i.get("type", "message") == "message"] == [
        "user", "assistant", "user", "assistant"]

    reqs = cc.since(synth_sim, mark)
    calls = [r for r in reqs if r.target == "/v1/responses"]
    kept = [r for r in reqs if r.target.startswith("/v1/conversations")]
    assert len(calls) == 2 and len(kept) >= 5, [r.target for r in reqs]
    first, second = (cc.sim_usage(r) for r in calls)
    assert second.input > first.input, "the second turn sent the first one along"
    cc.expect_metered(delta, ALICE, "openai", calls)
    rows = cc.event_rows(tailmeter_clients, start_ms, len(reqs))
    assert len(rows) == len(reqs), rows
    unmetered = [r for r in rows if r["model"] == "__unknown__"]
    assert len(unmetered) == len(kept) and all(r["usage_source"] == "none" for r in unmetered)
    assert {(r["identity"], r["endpoint"], r["status"]) for r in rows} == {(ALICE, "responses", 200)}
    for req in reqs:
        assert_upstream_openai_auth(req, PROVIDER_OPENAI_KEY)

    # The session id in another identity's hands opens nothing.
    async def peek() -> list:
        other = OpenAIConversationsSession(conversation_id=conversation,
                                           openai_client=async_client(tailmeter_clients, SRC_CI))
        return await other.get_items()

    with pytest.raises(openai.NotFoundError, match="was not created by identity"):
        asyncio.run(peek())

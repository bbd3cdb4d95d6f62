"""A self-hosted app using the OpenAI Python SDK without streaming: the
Karakeep pattern (tag a bookmark with structured output, tag an image,
summarize it, embed it), configured only by the environment block of
docs/clients/openai-sdk-apps.md, the way such an app is (`openai.OpenAI()`
reads OPENAI_BASE_URL and OPENAI_API_KEY itself).

What the SDK got back, what the simulator reported and what tailmeter
counted must all agree; a bad setting must raise an error whose message says
what to change.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import openai
import pytest

from harness import cli_clients as cc
from harness.clients import Tailmeter
from harness.config import ALICE, UNGRANTED
from harness.metrics import Usage
from harness.sim import Sim
from harness.snippets import env_block

DOC = "openai-sdk-apps.md"
BOOKMARK = "Pingora is a Rust framework to build fast, reliable and programmable networked systems."
TAGS_SCHEMA = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["tags"],
    "additionalProperties": False,
}
# A 1x1 PNG, as Karakeep sends screenshots and images: a data URL.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture
def app_env(tailmeter_clients: Tailmeter, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The process environment of an app set up from the doc's Karakeep block."""
    env = env_block(DOC, "karakeep.env", tailmeter_clients.base_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    yield env


def sdk_usage(usage) -> Usage:
    """The five figures from a chat or embeddings `usage` object."""
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input=usage.prompt_tokens,
        output=getattr(usage, "completion_tokens", 0) or 0,
        cache_read=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        reasoning=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


def test_karakeep_pattern_is_metered(tailmeter_clients: Tailmeter, synth_sim: Sim, app_env: dict[str, str]) -> None:
    client = openai.OpenAI(max_retries=0)
    text_model, image_model = app_env["INFERENCE_TEXT_MODEL"], app_env["INFERENCE_IMAGE_MODEL"]
    mark, start_ms, delta = len(synth_sim.requests()), int(time.time() * 1000), tailmeter_clients.metrics.delta()
    seen: list[Usage] = []

    tagging = client.chat.completions.create(
        model=text_model,
        messages=[{"role": "user", "content": f"Suggest tags for this bookmark as JSON: {BOOKMARK}"}],
        response_format={"type": "json_schema", "json_schema": {"name": "tags", "schema": TAGS_SCHEMA, "strict": True}},
    )
    tags = json.loads(tagging.choices[0].message.content)["tags"]
    assert tags and all(isinstance(t, str) for t in tags), tags
    seen.append(sdk_usage(tagging.usage))

    image = client.chat.completions.create(
        model=image_model,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Suggest tags for this image as JSON."},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        ]}],
        response_format={"type": "json_schema", "json_schema": {"name": "tags", "schema": TAGS_SCHEMA, "strict": True}},
    )
    assert json.loads(image.choices[0].message.content)["tags"]
    seen.append(sdk_usage(image.usage))

    summary = client.chat.completions.create(
        model=text_model, messages=[{"role": "user", "content": f"Summarize in one sentence: {BOOKMARK}"}]
    )
    assert summary.choices[0].message.content and summary.choices[0].finish_reason == "stop"
    seen.append(sdk_usage(summary.usage))

    embedded = client.embeddings.create(model=app_env["EMBEDDING_TEXT_MODEL"], input=[BOOKMARK])
    assert len(embedded.data[0].embedding) == 1536
    seen.append(sdk_usage(embedded.usage))

    reqs = cc.since(synth_sim, mark)
    assert [r.target for r in reqs] == ["/v1/chat/completions"] * 3 + ["/v1/embeddings"], [r.target for r in reqs]
    assert [cc.sim_usage(r) for r in reqs] == seen, "the SDK saw other figures than the simulator reported"
    assert all(r.header("user-agent")[0].startswith("OpenAI/Python") for r in reqs), reqs[0].headers
    cc.expect_metered(delta, ALICE, "openai", reqs)
    cc.expect_events(tailmeter_clients, start_ms, ALICE, "openai", reqs)


def test_base_url_with_v1_twice_names_the_fix(tailmeter_clients: Tailmeter, app_env: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=app_env["OPENAI_BASE_URL"] + "/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=app_env["INFERENCE_TEXT_MODEL"], messages=[{"role": "user", "content": "hi"}])
    message = str(raised.value)
    assert "/v1 twice" in message and "exactly one /v1" in message, message


def test_empty_model_setting_names_the_fix(tailmeter_clients: Tailmeter, app_env: dict[str, str]) -> None:
    """An app whose model variable is empty sends `"model": ""`."""
    client = openai.OpenAI(max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}])
    message = str(raised.value)
    assert raised.value.status_code == 400 and "model" in message and "gpt-4o" in message, message


def test_ungranted_model_names_the_fix(tailmeter_clients: Tailmeter, app_env: dict[str, str]) -> None:
    client = openai.OpenAI(max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model=UNGRANTED["openai"], messages=[{"role": "user", "content": "hi"}])
    message = str(raised.value)
    assert "is not granted model" in message and "gpt-4o" in message, message

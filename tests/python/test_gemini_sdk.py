"""The official Google Gen AI SDK (`google-genai`) through tailmeter, against provider-sim.

The SDK names the model in the path (`/v1beta/models/{model}:generateContent`, and
`:streamGenerateContent?alt=sse` for streams) and sends its key as `x-goog-api-key`. Each test
checks what the client sees, what tailmeter counted (all five token types and the request), and
what the simulator received (the bare model in the path, the provider's key, never the client's).

Figures (tests/fixtures/EXPECTED.md): generateContent replays gemini_generate_content_cached_usage
(prompt 17713 of which cached 17379, candidates 68 + thoughts 821); the stream replays
gemini_stream_sse_usage_thoughts (prompt 18, candidates 80 + thoughts 35).
"""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from harness.clients import Tailmeter
from harness.config import ALICE, GEMINI_MODELS
from harness.metrics import TOKEN_TYPES, Expect, Usage
from harness.sim import Sim, new_marker

MODEL = GEMINI_MODELS[0]
CLIENT_GEMINI_KEY = "gm-client-e2e-0b77e2"
GENERATE = Usage(input=17713, output=68 + 821, cache_read=17379, reasoning=821)
STREAM = Usage(input=18, output=80 + 35, reasoning=35)


def client(tm: Tailmeter, marker: dict[str, str], api_version: str = "v1beta") -> genai.Client:
    """A client for `tm` (keep it referenced while calling: the SDK closes its HTTP client on collection)."""
    options = types.HttpOptions(base_url=tm.base_url, api_version=api_version, headers=marker)
    return genai.Client(api_key=CLIENT_GEMINI_KEY, http_options=options)


def check_upstream(sim: Sim, marker: dict[str, str], path: str) -> None:
    req = sim.one(marker)
    assert req.target.split("?")[0] == path, req.target
    assert req.header("x-goog-api-key") and CLIENT_GEMINI_KEY not in req.header("x-goog-api-key")[0]
    assert not req.leaked([CLIENT_GEMINI_KEY]), req.leaked([CLIENT_GEMINI_KEY])
    assert req.model == MODEL


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_generate_content(tailmeter_metering: Tailmeter, sim: Sim, api_version: str) -> None:
    marker = new_marker()
    delta = tailmeter_metering.metrics.delta()
    gemini = client(tailmeter_metering, marker, api_version)
    response = gemini.models.generate_content(model=MODEL, contents="Describe the video.")
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 17713
    assert response.text
    delta.expect_usage(
        identity=ALICE, provider="gemini", model=MODEL, endpoint="generate_content", usage=GENERATE
    )
    check_upstream(sim, marker, f"/{api_version}/models/{MODEL}:generateContent")


def test_generate_content_stream(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    marker = new_marker()
    delta = tailmeter_metering.metrics.delta()
    gemini = client(tailmeter_metering, marker)
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="Count to 30."))
    assert len(chunks) == 3
    last = chunks[-1].usage_metadata
    assert last is not None and (last.prompt_token_count, last.candidates_token_count) == (18, 80)
    delta.expect_usage(
        identity=ALICE, provider="gemini", model=MODEL, endpoint="generate_content", usage=STREAM
    )
    check_upstream(sim, marker, f"/v1beta/models/{MODEL}:streamGenerateContent")


def test_provider_qualified_model_in_the_path(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    """`gemini/gemini-2.5-flash` routes like the bare name; the provider sees the bare name."""
    marker = new_marker()
    delta = tailmeter_metering.metrics.delta()
    gemini = client(tailmeter_metering, marker)
    gemini.models.generate_content(model=f"gemini/{MODEL}", contents="hi")
    delta.expect_usage(
        identity=ALICE, provider="gemini", model=MODEL, endpoint="generate_content", usage=GENERATE
    )
    check_upstream(sim, marker, f"/v1beta/models/{MODEL}:generateContent")


def test_unknown_model_is_refused_in_geminis_format(tailmeter_metering: Tailmeter) -> None:
    gemini = client(tailmeter_metering, new_marker())
    with pytest.raises(genai.errors.ClientError) as refused:
        gemini.models.generate_content(model="gemini-0-nope", contents="hi")
    assert refused.value.code == 404
    assert refused.value.status == "NOT_FOUND"
    assert "gemini-0-nope" in (refused.value.message or "")


def test_count_tokens_is_passed_on_not_metered(tailmeter_metering: Tailmeter, sim: Sim) -> None:
    """`:countTokens` (Gemini CLI calls it to size its context) reaches the provider with the
    provider's key and the bare model, and no tokens are counted for it."""
    marker = new_marker()
    delta = tailmeter_metering.metrics.delta()
    gemini = client(tailmeter_metering, marker)
    counted = gemini.models.count_tokens(model=f"gemini/{MODEL}", contents="How many tokens is this?")
    assert counted.total_tokens == 20
    who = {"identity": ALICE, "provider": "gemini", "model": MODEL}
    delta.expect(
        [Expect("tailmeter_tokens_total", {**who, "type": t}, 0) for t in TOKEN_TYPES]
        + [Expect("tailmeter_requests_total", {**who, "endpoint": "generate_content"}, 0),
           Expect("tailmeter_requests_total", {**who, "endpoint": "count_tokens", "code": "200"}, 1)]
    )
    check_upstream(sim, marker, f"/v1beta/models/{MODEL}:countTokens")


def test_base_url_with_the_api_version_is_400_naming_the_fix(tailmeter_metering: Tailmeter) -> None:
    """`/v1beta` on the end of the SDK's base URL doubles it: answered in Gemini's format, saying
    how to set it, not as an OpenAI-shaped 404."""
    options = types.HttpOptions(base_url=f"{tailmeter_metering.base_url}/v1beta")
    gemini = genai.Client(api_key=CLIENT_GEMINI_KEY, http_options=options)
    with pytest.raises(genai.errors.ClientError) as refused:
        gemini.models.generate_content(model=MODEL, contents="hi")
    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
    assert "GOOGLE_GEMINI_BASE_URL" in (refused.value.message or "")


def test_an_action_not_served_is_404_in_geminis_format(tailmeter_metering: Tailmeter) -> None:
    gemini = client(tailmeter_metering, new_marker())
    with pytest.raises(genai.errors.ClientError) as refused:
        gemini.models.embed_content(model=MODEL, contents="hi")
    assert (refused.value.code, refused.value.status) == (404, "NOT_FOUND")
    assert ":countTokens" in (refused.value.message or "")


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_models_list_in_geminis_shape(tailmeter_metering: Tailmeter, api_version: str) -> None:
    """`models.list()` (GET /v1beta/models, or /v1/models with the SDK's key header) answers with
    the Gemini models the caller may call, named as generateContent takes them."""
    gemini = client(tailmeter_metering, new_marker(), api_version)
    listed = list(gemini.models.list())
    assert [m.name for m in listed] == [f"models/{m}" for m in GEMINI_MODELS], listed
    assert listed[0].supported_actions == ["generateContent", "countTokens"], listed[0]
    assert gemini.models.generate_content(model=listed[0].name, contents="hi").text

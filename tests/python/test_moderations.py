"""OpenAI's moderations through tailmeter, with the OpenAI Python SDK, as apps call them before
or after a chat (guardrails, LibreChat's moderation, n8n's node): `POST /v1/moderations`.

Free at OpenAI, so nothing to meter: each call is routed by its model (OpenAI's default,
`omni-moderation-latest`, when the body names none), granted like any model, and recorded as a
row without figures and without a missing-usage reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import Tailmeter, openai_client
from harness.config import ALICE, SRC_ALICE, SRC_CI
from harness.metrics import Expect
from harness.sim import Sim

from conftest import launch_instance

MODERATION_MODELS = ["omni-moderation-latest", "text-moderation-stable"]


@pytest.fixture
def moderated(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    """An instance whose OpenAI provider serves the moderation models, granted to Alice only."""
    openai_provider = cfg.Provider("openai", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}",
                                   MODERATION_MODELS + ["gpt-4o"])
    granted = [f"openai/{m}" for m in MODERATION_MODELS + ["gpt-4o"]]
    tm = launch_instance(binaries["tailmeter"], tmp_path, [openai_provider], grants=[([ALICE], granted)])
    yield tm
    tm.proc.stop()


def test_moderations_are_routed_by_their_model_or_openais_default_and_recorded(
        moderated: Tailmeter, synth_sim: Sim) -> None:
    client = openai_client(moderated, SRC_ALICE)
    start_ms, delta, mark = int(time.time() * 1000), moderated.metrics.delta(), len(synth_sim.requests())
    plain = client.moderations.create(input="A recipe for bread.")
    assert plain.model == "omni-moderation-2024-09-26" and not plain.results[0].flagged
    several = client.moderations.create(model="openai/omni-moderation-latest",
                                        input=["Calm words.", "Graphic violence."])
    assert [r.flagged for r in several.results] == [False, True]
    picture = client.moderations.create(model="omni-moderation-latest", input=[
        {"type": "text", "text": "Is this violence?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ])
    assert picture.results[0].category_applied_input_types.violence == ["text", "image"]
    legacy = client.moderations.create(model="text-moderation-stable", input="Hello.")
    assert legacy.model == "text-moderation-stable"

    reqs = cc.since(synth_sim, mark)
    # The default is not written into the body; a provider/model name reaches the provider bare.
    assert [r.model for r in reqs] == [None, "omni-moderation-latest", "omni-moderation-latest",
                                       "text-moderation-stable"]
    rows = cc.event_rows(moderated, start_ms, 4)
    assert [(r["model"], r["endpoint"], r["status"]) for r in rows] == [
        ("omni-moderation-latest", "moderations", 200)] * 3 + [("text-moderation-stable", "moderations", 200)]
    assert all(r["usage_source"] == "none" and r["input_tokens"] == r["output_tokens"] == 0
               and r["cost_usd"] == 0 for r in rows)
    who = {"identity": ALICE, "provider": "openai"}
    delta.expect([
        Expect("tailmeter_requests_total", {**who, "model": "omni-moderation-latest", "endpoint": "moderations",
                                            "code": "200"}, 3),
        Expect("tailmeter_requests_total", {**who, "model": "text-moderation-stable", "endpoint": "moderations"}, 1),
        Expect("tailmeter_usage_missing_total", {}, 0),
        Expect("tailmeter_unpriced_requests_total", {}, 0),
    ])


def test_moderations_refused_in_openais_format_without_reaching_the_provider(
        moderated: Tailmeter, synth_sim: Sim, binaries: dict[str, Path], tmp_path: Path) -> None:
    mark = len(synth_sim.requests())
    with pytest.raises(openai.PermissionDeniedError) as denied:
        openai_client(moderated, SRC_CI).moderations.create(input="Hello.")
    assert denied.value.code == "model_not_granted"
    with pytest.raises(openai.NotFoundError) as unknown:
        openai_client(moderated, SRC_ALICE).moderations.create(model="omni-moderation-2099", input="Hello.")
    assert unknown.value.code == "model_not_found"
    assert cc.since(synth_sim, mark) == []

    # A gateway whose providers do not list the default model says so when a body names none.
    provider = cfg.Provider("openai", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}", ["gpt-4o"])
    (tmp_path / "bare").mkdir()
    bare = launch_instance(binaries["tailmeter"], tmp_path / "bare", [provider], grants=[([ALICE], ["openai/*"])])
    try:
        with pytest.raises(openai.NotFoundError) as missing:
            openai_client(bare, SRC_ALICE).moderations.create(input="Hello.")
        assert "omni-moderation-latest" in missing.value.message
        assert "uses when a request names none" in missing.value.message
    finally:
        bare.proc.stop()

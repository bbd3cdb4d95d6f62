"""Images and audio through tailmeter, with the OpenAI Python SDK, as Open WebUI's image
generation, voice input and read-aloud use them: `/v1/images/generations` and `/edits`,
`/v1/audio/transcriptions`, `/translations` and `/speech`.

Routed by the model in a JSON body or in a `multipart/form-data` form's `model` field (several
MiB of audio stepped over, not copied into anything but the forwarded body); metered exactly
where the model reports tokens (GPT image models, gpt-4o-transcribe, gpt-4o-mini-tts streamed
as events), recorded without figures where it does not (DALL·E, whisper-1's seconds, speech as
audio bytes), and counted as usage missing then, never estimated.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from harness import cli_clients as cc
from harness import config as cfg
from harness.clients import Capture, Tailmeter, openai_client
from harness.config import ALICE, SRC_ALICE
from harness.metrics import Expect
from harness.sim import Sim

from conftest import launch_instance

IMAGE_MODELS = ["gpt-image-1", "dall-e-3"]
AUDIO_MODELS = ["gpt-4o-transcribe", "whisper-1", "gpt-4o-mini-tts", "tts-1"]
# Three MiB of sound: a minute and a half of 16 kHz speech.
WAV = b"RIFF" + bytes(range(256)) * (3 * 4096)


@pytest.fixture
def media(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    """An instance whose OpenAI provider serves image and audio models, all granted to Alice, and an
    Anthropic one (which serves neither API)."""
    openai_media = cfg.Provider("openai", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}",
                                IMAGE_MODELS + AUDIO_MODELS + ["gpt-image-1.5", "gpt-4o"])
    anthropic = cfg.Provider("anthropic", "anthropic", synth_sim.base_url, f"${{{cfg.ANTHROPIC_KEY_ENV}}}",
                             ["claude-haiku-4-5"])
    granted = [f"openai/{m}" for m in IMAGE_MODELS + AUDIO_MODELS] + ["anthropic/claude-haiku-4-5"]
    tm = launch_instance(binaries["tailmeter"], tmp_path, [openai_media, anthropic], grants=[([ALICE], granted)])
    yield tm
    tm.proc.stop()


# What OpenAI lists for the models billed per image, minute and character, as a user would
# configure them; GPT image models are priced in tokens, and a per-image price adds to those.
MEDIA_PRICES = """
[prices."dall-e-3"]
image = 0.04
images = { "hd" = 0.08, "1024x1792" = 0.08, "1792x1024" = 0.08, "hd 1024x1792" = 0.12, "hd 1792x1024" = 0.12 }

[prices."dall-e-2"]
image = 0.02
images = { "256x256" = 0.016, "512x512" = 0.018 }

[prices."whisper-1"]
audio_minute = 0.006

[prices."tts-1"]
characters = 15.00

[prices."gpt-image-1"]
input = 5.00
image_input = 10.00         # USD per million input tokens of pictures
output = 40.00

[prices."gpt-4o-transcribe"]
input = 2.50
audio_input = 6.00          # USD per million input tokens of sound
output = 10.00
"""


@pytest.fixture
def priced_media(binaries: dict[str, Path], synth_sim: Sim, tmp_path: Path) -> Iterator[Tailmeter]:
    """An instance whose OpenAI provider serves DALL·E, whisper-1, tts-1 and gpt-image-1, priced
    per image, per minute, per character and per token."""
    models = ["dall-e-3", "dall-e-2", "whisper-1", "tts-1", "gpt-image-1", "gpt-4o-transcribe"]
    # The harness prices gpt-4o in every config.
    openai_media = cfg.Provider("openai", "openai", synth_sim.base_url, f"${{{cfg.OPENAI_KEY_ENV}}}",
                                models + ["gpt-4o"])
    tm = launch_instance(binaries["tailmeter"], tmp_path, [openai_media],
                         grants=[([ALICE], [f"openai/{m}" for m in models])], extra=MEDIA_PRICES)
    yield tm
    tm.proc.stop()


def reported(reqs: list) -> list:
    """The requests whose answer reported token figures."""
    return [r for r in reqs if r.raw.get("usage") is not None]


def test_images_are_metered_exactly_whole_streamed_and_edited(media: Tailmeter, synth_sim: Sim) -> None:
    capture = Capture()
    client = openai_client(media, SRC_ALICE, capture)
    start_ms, delta, mark = int(time.time() * 1000), media.metrics.delta(), len(synth_sim.requests())
    # Seven tall high-quality pictures: 17 MiB of base64 in one JSON answer, past the 16 MiB the
    # gateway buffers whole; its usage, after the pictures, is read all the same.
    big = client.images.generate(model="gpt-image-1", prompt="A lighthouse at dusk", size="1024x1536",
                                 quality="high", n=7)
    assert sum(len(image.b64_json) for image in big.data) > 16 * 1024 * 1024
    assert big.usage.output_tokens == 7 * 6240
    events = list(client.images.generate(model="gpt-image-1", prompt="A fox", stream=True, partial_images=2))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    # An edit is a form; the model named as provider/model reaches the provider bare, the rest of
    # the form byte for byte.
    pictures = [("a.png", b"\x89PNG-a" * 5000, "image/png"), ("b.png", b"\x89PNG-b" * 5000, "image/png")]
    edited = client.images.edit(model="openai/gpt-image-1", image=pictures, prompt="Add a moon", quality="low")
    assert edited.usage.input_tokens_details.image_tokens == 2 * 194
    streamed_edit = list(client.images.edit(model="gpt-image-1", image=pictures[0], prompt="Add stars",
                                            stream=True))
    assert streamed_edit[-1].type == "image_edit.completed"

    reqs = cc.since(synth_sim, mark)
    assert [r.model for r in reqs] == ["gpt-image-1"] * 4
    sent = capture.bodies[2]
    assert b'name="model"\r\n\r\nopenai/gpt-image-1\r\n' in sent
    forwarded = sent.replace(b"openai/gpt-image-1", b"gpt-image-1", 1)
    assert (reqs[2].body_len, reqs[2].body_sha256) == (len(forwarded), hashlib.sha256(forwarded).hexdigest())
    cc.expect_events(media, start_ms, ALICE, "openai", reqs)
    cc.expect_metered(delta, ALICE, "openai", reqs)
    rows = cc.event_rows(media, start_ms, 4)
    assert [(r["stream"], r["usage_source"]) for r in rows] == [(0, "provider"), (1, "provider")] * 2


def test_dall_e_reports_no_tokens_and_is_recorded_without_any(media: Tailmeter, synth_sim: Sim) -> None:
    client = openai_client(media, SRC_ALICE)
    start_ms, delta = int(time.time() * 1000), media.metrics.delta()
    answer = client.images.generate(model="dall-e-3", prompt="A red bicycle", size="1024x1792")
    assert answer.data[0].url and answer.usage is None
    row, = cc.event_rows(media, start_ms, 1)
    assert (row["endpoint"], row["usage_source"], row["input_tokens"], row["output_tokens"]) == \
        ("images", "none", 0, 0)
    delta.expect([
        Expect("tailmeter_requests_total", {"model": "dall-e-3", "endpoint": "images", "code": "200"}, 1),
        Expect("tailmeter_usage_missing_total", {"endpoint": "images", "reason": "no_token_usage"}, 1),
        Expect("tailmeter_tokens_total", {"model": "dall-e-3"}, 0),
        # Billed per image by OpenAI, with no price here: the gap shows.
        Expect("tailmeter_unpriced_requests_total", {"model": "dall-e-3"}, 1),
    ])


def test_transcriptions_are_routed_by_their_forms_model_and_metered(media: Tailmeter, synth_sim: Sim) -> None:
    capture = Capture()
    client = openai_client(media, SRC_ALICE, capture)
    start_ms, delta, mark = int(time.time() * 1000), media.metrics.delta(), len(synth_sim.requests())
    whole = client.audio.transcriptions.create(model="openai/gpt-4o-transcribe",
                                               file=("memo.wav", io.BytesIO(WAV), "audio/wav"),
                                               prompt="A voice memo about the garden.")
    assert whole.text.startswith("Transcript of memo.wav") and whole.usage.input_tokens > 900
    streamed = list(client.audio.transcriptions.create(model="gpt-4o-transcribe", stream=True,
                                                       file=("memo.wav", io.BytesIO(WAV), "audio/wav")))
    assert streamed[-1].type == "transcript.text.done" and streamed[-1].usage.output_tokens > 0
    # Open WebUI (aiohttp) streams the file it reads as it goes: the form arrives chunked.
    form = capture.bodies[0]
    boundary = form[2:form.index(b"\r\n")].decode()
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address=SRC_ALICE), trust_env=False) as http:
        answer = http.post(f"{media.base_url}/v1/audio/transcriptions",
                           content=(form[i:i + 65536] for i in range(0, len(form), 65536)),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}",
                                    "authorization": "Bearer sk-x"})
    assert answer.status_code == 200 and answer.json()["usage"]["input_tokens"] > 900, answer.text
    reqs = cc.since(synth_sim, mark)
    assert [r.model for r in reqs] == ["gpt-4o-transcribe"] * 3
    forwarded = form.replace(b"openai/gpt-4o-transcribe", b"gpt-4o-transcribe", 1)
    for req in (reqs[0], reqs[2]):
        assert req.body_len > len(WAV) and req.body_sha256 == hashlib.sha256(forwarded).hexdigest()
    assert reqs[2].header("content-length") == [str(len(forwarded))]
    cc.expect_events(media, start_ms, ALICE, "openai", reqs)
    cc.expect_metered(delta, ALICE, "openai", reqs)


# The SDK marks translations deprecated; OpenAI still serves them, and apps still call them.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_audio_billed_otherwise_is_recorded_without_tokens(media: Tailmeter, synth_sim: Sim) -> None:
    """whisper-1 reports seconds, a translation and a transcript as text nothing, speech as audio
    bytes nothing: rows with no figures, each counted as usage missing. Speech streamed as events
    reports tokens, counted exactly."""
    client = openai_client(media, SRC_ALICE)
    start_ms, delta, mark = int(time.time() * 1000), media.metrics.delta(), len(synth_sim.requests())
    seconds = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(WAV), "audio/wav"))
    assert seconds.usage.type == "duration"
    translated = client.audio.translations.create(model="whisper-1", file=("a.wav", io.BytesIO(WAV), "audio/wav"))
    assert translated.text.startswith("Translation of a.wav")
    text = client.audio.transcriptions.create(model="gpt-4o-transcribe", response_format="text",
                                              file=("a.wav", io.BytesIO(WAV), "audio/wav"))
    assert text.startswith("Transcript of a.wav")
    audio = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input="Dinner is ready.")
    assert audio.response.headers["content-type"] == "audio/mpeg" and len(audio.content) > 1000
    events = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input="Dinner is ready.",
                                        stream_format="sse")
    assert b'"type":"speech.audio.done"' in events.content

    reqs = cc.since(synth_sim, mark)
    assert len(reqs) == 5 and len(reported(reqs)) == 1
    rows = cc.event_rows(media, start_ms, 5)
    assert [(r["model"], r["usage_source"]) for r in rows] == [
        ("whisper-1", "none"), ("whisper-1", "none"), ("gpt-4o-transcribe", "none"),
        ("gpt-4o-mini-tts", "none"), ("gpt-4o-mini-tts", "provider")]
    assert all(r["endpoint"] == "audio" and r["status"] == 200 for r in rows)
    spoken = cc.sim_usage(reported(reqs)[0])
    tts = {"identity": ALICE, "provider": "openai", "model": "gpt-4o-mini-tts"}
    delta.expect([
        Expect("tailmeter_usage_missing_total", {"endpoint": "audio", "reason": "no_token_usage"}, 4),
        Expect("tailmeter_requests_total", {**tts, "endpoint": "audio", "code": "200"}, 2),
        Expect("tailmeter_tokens_total", {**tts, "type": "input"}, spoken.input),
        Expect("tailmeter_tokens_total", {**tts, "type": "output"}, spoken.output),
        Expect("tailmeter_tokens_total", {"model": "whisper-1"}, 0),
    ])


# The SDK marks translations deprecated; OpenAI still serves them, and apps still call them.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_images_minutes_and_characters_are_priced_as_configured(priced_media: Tailmeter, synth_sim: Sim) -> None:
    """DALL·E's pictures cost their price by quality and size (a form's fields as well as JSON's),
    whisper-1's answers their minutes, tts-1's speech its characters, all without tokens; a GPT
    image model's and gpt-4o-transcribe's tokens at their token prices, the input's pictures and
    sound at theirs; a refused request nothing."""
    client = openai_client(priced_media, SRC_ALICE)
    start_ms, delta = int(time.time() * 1000), priced_media.metrics.delta()
    client.images.generate(model="dall-e-3", prompt="A red bicycle", size="1024x1792", quality="hd")
    client.images.generate(model="dall-e-3", prompt="A blue bicycle", n=2)
    client.images.create_variation(model="dall-e-2", image=("a.png", b"\x89PNG-a" * 5000, "image/png"),
                                   n=3, size="512x512")
    heard = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(WAV), "audio/wav"))
    translated = client.audio.translations.create(model="whisper-1", response_format="verbose_json",
                                                  file=("b.wav", io.BytesIO(WAV[:100_000]), "audio/wav"))
    spoken = "Le dîner est prêt, à table !"
    client.audio.speech.create(model="tts-1", voice="coral", input=spoken)
    drawn = client.images.generate(model="gpt-image-1", prompt="A fox", quality="low")
    pictures = [("a.png", b"\x89PNG-a" * 5000, "image/png"), ("b.png", b"\x89PNG-b" * 5000, "image/png")]
    edited = client.images.edit(model="gpt-image-1", image=pictures, prompt="Add a moon", quality="low")
    transcribed = client.audio.transcriptions.create(model="gpt-4o-transcribe", prompt="A voice memo.",
                                                     file=("c.wav", io.BytesIO(WAV), "audio/wav"))
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-3", prompt="A green bicycle", size="999x999")

    seconds = (heard.usage.seconds, translated.duration)
    assert seconds[0] > seconds[1] > 0
    token_cost = (drawn.usage.input_tokens * 5.00 + drawn.usage.output_tokens * 40.00) / 1e6
    edit_in = edited.usage.input_tokens_details
    assert edit_in.image_tokens == 2 * 194 and edit_in.text_tokens > 0
    edit_cost = (edit_in.text_tokens * 5.00 + edit_in.image_tokens * 10.00 + edited.usage.output_tokens * 40.00) / 1e6
    heard_in = transcribed.usage.input_token_details
    assert heard_in.audio_tokens > 900 and heard_in.text_tokens > 0
    transcribe_cost = (heard_in.text_tokens * 2.50 + heard_in.audio_tokens * 6.00
                       + transcribed.usage.output_tokens * 10.00) / 1e6
    want = [
        ("dall-e-3", 200, 0.12), ("dall-e-3", 200, 2 * 0.04), ("dall-e-2", 200, 3 * 0.018),
        ("whisper-1", 200, seconds[0] / 60 * 0.006), ("whisper-1", 200, seconds[1] / 60 * 0.006),
        ("tts-1", 200, len(spoken) * 15.00 / 1e6), ("gpt-image-1", 200, token_cost),
        ("gpt-image-1", 200, edit_cost), ("gpt-4o-transcribe", 200, transcribe_cost), ("dall-e-3", 400, 0.0),
    ]
    rows = cc.event_rows(priced_media, start_ms, len(want))
    got = [(r["model"], r["status"], r["cost_usd"]) for r in rows]
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for (model, _, cost), (_, _, expected) in zip(got, want):
        assert cost == pytest.approx(expected, rel=1e-9, abs=1e-12), (model, cost, expected)
    assert [r["usage_source"] for r in rows] == ["none"] * 6 + ["provider"] * 3 + ["none"]
    per_model: dict[str, float] = {}
    for model, _, cost in want:
        per_model[model] = per_model.get(model, 0.0) + cost
    delta.expect([Expect("tailmeter_cost_usd_total", {"identity": ALICE, "provider": "openai", "model": model}, cost)
                  for model, cost in per_model.items()] +
                 [Expect("tailmeter_unpriced_requests_total", {}, 0)])


def test_bad_media_requests_are_refused_in_openais_format(media: Tailmeter, synth_sim: Sim) -> None:
    client = openai_client(media, SRC_ALICE)
    mark = len(synth_sim.requests())
    with pytest.raises(openai.NotFoundError, match="gpt-image-9"):
        client.images.generate(model="gpt-image-9", prompt="x")
    with pytest.raises(openai.PermissionDeniedError, match="gpt-image-1.5"):
        client.images.generate(model="gpt-image-1.5", prompt="x")
    with pytest.raises(openai.NotFoundError, match="cannot reach"):
        client.audio.transcriptions.create(model="claude-haiku-4-5", file=("a.wav", io.BytesIO(WAV), "audio/wav"))
    with pytest.raises(openai.BadRequestError, match="model"):
        client.images.edit(model="", image=("a.png", b"\x89PNG", "image/png"), prompt="x")
    url = f"{media.base_url}/v1/audio/transcriptions"
    boundary = "tm-test"
    cut = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
           f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode() + WAV
    twice = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
             f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-transcribe\r\n"
             f"--{boundary}--\r\n").encode()
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address=SRC_ALICE), trust_env=False) as http:
        for body, says in [(cut, "before its closing boundary"), (twice, "`model` field is given twice")]:
            answer = http.post(url, content=body, headers={
                "content-type": f"multipart/form-data; boundary={boundary}", "authorization": "Bearer sk-x"})
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["code"] == "invalid_form" and says in error["message"], error
    assert cc.since(synth_sim, mark) == [], "no refused request reaches the provider"

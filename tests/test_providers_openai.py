"""The OpenAI adapter against the fake OpenAI Images API (real wire format)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from context_server.adapters.providers.base import ProviderRequest
from context_server.adapters.providers.openai import OpenAIProvider
from context_server.errors import InvalidInput, ProviderError
from tests.fakes import OpenAIFake, make_png
from tests.fakes.recorders import ProgressLog, RecordingSleep

pytestmark = pytest.mark.anyio

ENV = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": "https://api.openai.test/v1"}


@pytest.fixture
def fake() -> OpenAIFake:
    return OpenAIFake()


@pytest.fixture
def provider(fake: OpenAIFake) -> OpenAIProvider:
    return OpenAIProvider(ENV, fake.client(), sleep=RecordingSleep())


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


async def test_generate_sends_exactly_the_prompt_and_returns_a_png_of_that_size(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    log = ProgressLog()
    prompt = "a red fox in fresh snow, watercolour — soft light"
    image = await provider.generate(
        ProviderRequest(prompt, "gpt-image-1", 1536, 1024), log.progress, log.submit
    )
    sent = fake.calls("/v1/images/generations")
    assert len(sent) == 1
    assert sent[0].json["prompt"] == prompt
    assert sent[0].json["size"] == "1536x1024" and sent[0].json["model"] == "gpt-image-1"
    assert sent[0].headers["authorization"] == "Bearer test-key"
    assert size_of(image.data) == (1536, 1024)
    assert image.model == "gpt-image-1" and image.notes == []
    assert image.cost_usd == pytest.approx(0.063)
    assert log.values and log.values[0] < 1


async def test_dall_e_3_asks_for_b64_json_and_returns_revised_prompt(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    log = ProgressLog()
    image = await provider.generate(
        ProviderRequest("a castle", "dall-e-3", 1792, 1024), log.progress, log.submit
    )
    assert fake.requests[0].json["response_format"] == "b64_json"
    assert image.revised_prompt == "A detailed rendering of: a castle"
    assert size_of(image.data) == (1792, 1024)


async def test_unsupported_size_is_snapped_and_noted(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    log = ProgressLog()
    image = await provider.generate(
        ProviderRequest("a bridge", "gpt-image-1", 1920, 1080), log.progress, log.submit
    )
    assert fake.requests[0].json["size"] == "1536x1024"
    assert image.notes == ["size 1920x1080 snapped to 1536x1024 (gpt-image-1 sizes)"]


async def test_negative_prompt_and_seed_are_dropped_with_notes_not_sent(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    log = ProgressLog()
    request = ProviderRequest("a cat", "gpt-image-1", 1024, 1024, negative_prompt="blurry", seed=7)
    image = await provider.generate(request, log.progress, log.submit)
    body = fake.requests[0].json
    assert "negative_prompt" not in body and "seed" not in body
    assert any("no negative prompt" in n and "blurry" in n for n in image.notes)
    assert any("seed" in n for n in image.notes)


async def test_openai_edit_sends_mask_as_multipart(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    log = ProgressLog()
    source = make_png(1024, 1024, "source")
    # Our convention: white = repaint. Left half white.
    mask_image = Image.new("L", (512, 512), 0)
    mask_image.paste(255, (0, 0, 256, 512))
    buf = io.BytesIO()
    mask_image.save(buf, format="PNG")
    request = ProviderRequest(
        "put a boat on the lake", "gpt-image-1", 1024, 1024, init_image=source, mask=buf.getvalue()
    )
    image = await provider.edit(request, log.progress, log.submit)
    sent = fake.calls("/v1/images/edits")[0]
    assert sent.content_type.startswith("multipart/form-data")
    assert sent.form["prompt"] == "put a boat on the lake"
    assert sent.files["image"] == source
    with Image.open(io.BytesIO(sent.files["mask"])) as mask:
        assert mask.mode == "RGBA" and mask.size == (1024, 1024)
        alpha = mask.getchannel("A")
        assert alpha.getpixel((10, 500)) == 0  # repaint (was white)
        assert alpha.getpixel((1000, 500)) == 255  # keep (was black)
    assert size_of(image.data) == (1024, 1024)


async def test_generate_with_an_input_image_goes_through_edits_without_mask(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    log = ProgressLog()
    request = ProviderRequest("same scene at night", "gpt-image-1", 1024, 1024, init_image=make_png(640, 640))
    await provider.generate(request, log.progress, log.submit)
    sent = fake.calls("/v1/images/edits")
    assert len(sent) == 1 and "mask" not in sent[0].files


async def test_dall_e_3_edit_is_invalid_input_naming_gpt_image_1(provider: OpenAIProvider) -> None:
    log = ProgressLog()
    request = ProviderRequest("x", "dall-e-3", 1024, 1024, init_image=make_png(64, 64))
    with pytest.raises(InvalidInput, match="gpt-image-1"):
        await provider.edit(request, log.progress, log.submit)
    with pytest.raises(InvalidInput, match="gpt-image-1"):
        await provider.generate(request, log.progress, log.submit)


async def test_unknown_model_lists_allowed_models(provider: OpenAIProvider) -> None:
    log = ProgressLog()
    with pytest.raises(InvalidInput, match="allowed: gpt-image-1, dall-e-3"):
        await provider.generate(ProviderRequest("x", "dall-e-9", 1024, 1024), log.progress, log.submit)


async def test_not_configured_without_key_says_which_variable(fake: OpenAIFake) -> None:
    provider = OpenAIProvider({}, fake.client())
    info = provider.info()
    assert info.configured is False and "OPENAI_API_KEY" in info.setup_hint
    assert [m.name for m in info.models] == ["gpt-image-1", "dall-e-3"]
    log = ProgressLog()
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        await provider.generate(ProviderRequest("x", "gpt-image-1", 1024, 1024), log.progress, log.submit)
    assert fake.requests == []


async def test_quality_outside_the_model_is_invalid_input(provider: OpenAIProvider) -> None:
    log = ProgressLog()
    request = ProviderRequest("x", "dall-e-3", 1024, 1024, extra={"quality": "high"})
    with pytest.raises(InvalidInput, match="hd"):
        await provider.generate(request, log.progress, log.submit)

"""The Stability adapter against the fake v2beta Stable Image API (multipart, real answers)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from context_server.adapters.providers.base import ProviderRequest
from context_server.adapters.providers.stability import StabilityProvider
from context_server.errors import InvalidInput, ProviderError
from tests.fakes import StabilityFake, make_png
from tests.fakes.recorders import ProgressLog, RecordingSleep

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> StabilityFake:
    return StabilityFake()


@pytest.fixture
def provider(fake: StabilityFake) -> StabilityProvider:
    env = {"STABILITY_API_KEY": "test-key", "STABILITY_BASE_URL": "https://api.stability.test"}
    return StabilityProvider(env, fake.client(), sleep=RecordingSleep())


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def test_core_generation_sends_multipart_with_prompt_aspect_ratio_and_seed(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    prompt = "an isometric tiny city, pastel colours"
    request = ProviderRequest(prompt, "core", 1920, 1080, negative_prompt="text, watermark", seed=42)
    image = await provider.generate(request, log.progress, log.submit)
    sent = fake.calls("/v2beta/stable-image/generate/core")[0]
    assert sent.content_type.startswith("multipart/form-data")
    assert sent.headers["accept"] == "application/json"
    assert sent.form == {
        "prompt": prompt,
        "output_format": "png",
        "negative_prompt": "text, watermark",
        "seed": "42",
        "aspect_ratio": "16:9",
    }
    assert image.seed == 42
    assert size_of(image.data) == (1344, 768)
    assert any("aspect_ratio 16:9" in n for n in image.notes)


async def test_ratio_stability_lacks_is_snapped_to_the_nearest_one(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    await provider.generate(ProviderRequest("a hill", "core", 1024, 768), log.progress, log.submit)  # 4:3
    assert fake.requests[0].form["aspect_ratio"] == "5:4"


async def test_sd35_sends_model_field_and_text_to_image_mode(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    await provider.generate(ProviderRequest("a robot", "sd3.5-medium", 1024, 1024), log.progress, log.submit)
    sent = fake.calls("/generate/sd3")[0]
    assert sent.form["model"] == "sd3.5-medium" and sent.form["mode"] == "text-to-image"


async def test_image_to_image_sends_image_and_strength_and_no_aspect_ratio(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    source = make_png(832, 1216, "portrait")
    request = ProviderRequest(
        "as an oil painting", "sd3.5-large", 832, 1216, init_image=source, strength=0.35
    )
    image = await provider.generate(request, log.progress, log.submit)
    sent = fake.calls("/generate/sd3")[0]
    assert sent.form["mode"] == "image-to-image" and sent.form["strength"] == "0.35"
    assert sent.files["image"] == source and "aspect_ratio" not in sent.form
    assert size_of(image.data) == (832, 1216)


async def test_core_with_an_input_image_is_invalid_input_naming_models_that_can(
    provider: StabilityProvider,
) -> None:
    log = ProgressLog()
    request = ProviderRequest("x", "core", 1024, 1024, init_image=make_png(64, 64))
    with pytest.raises(InvalidInput, match="ultra"):
        await provider.generate(request, log.progress, log.submit)


async def test_turbo_drops_negative_prompt_with_a_note(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    request = ProviderRequest("x", "sd3.5-large-turbo", 1024, 1024, negative_prompt="blur")
    image = await provider.generate(request, log.progress, log.submit)
    assert "negative_prompt" not in fake.requests[0].form
    assert any("no negative prompt" in n for n in image.notes)


async def test_edit_with_mask_uses_inpaint_with_a_white_mask(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    source = make_png(512, 512, "room")
    mask = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (256, 0, 512, 512))  # right half transparent = repaint
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    request = ProviderRequest("add a window", "core", 512, 512, init_image=source, mask=buf.getvalue())
    image = await provider.edit(request, log.progress, log.submit)
    sent = fake.calls("/v2beta/stable-image/edit/inpaint")[0]
    assert sent.form["prompt"] == "add a window"
    with Image.open(io.BytesIO(sent.files["mask"])) as sent_mask:
        assert sent_mask.mode == "L"
        assert sent_mask.getpixel((400, 10)) == 255 and sent_mask.getpixel((10, 10)) == 0
    assert image.model == "inpaint" and size_of(image.data) == (512, 512)
    assert any("inpaint" in n for n in image.notes)


async def test_edit_without_mask_runs_as_image_to_image(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    request = ProviderRequest("make it autumn", "core", 512, 512, init_image=make_png(512, 512))
    image = await provider.edit(request, log.progress, log.submit)
    assert fake.calls("/generate/sd3")[0].form["model"] == "sd3.5-large"
    assert image.notes[0] == "no mask given: edited as image-to-image with sd3.5-large"


async def test_content_filtered_result_says_may_have_been_charged(
    fake: StabilityFake, provider: StabilityProvider
) -> None:
    log = ProgressLog()
    fake.filtered = True
    with pytest.raises(ProviderError, match="may have been charged") as caught:
        await provider.generate(ProviderRequest("x", "ultra", 1024, 1024), log.progress, log.submit)
    assert caught.value.may_have_charged is True


async def test_seed_out_of_range_is_invalid_input(provider: StabilityProvider) -> None:
    log = ProgressLog()
    with pytest.raises(InvalidInput, match="4294967294"):
        await provider.generate(ProviderRequest("x", "core", 1024, 1024, seed=-5), log.progress, log.submit)


async def test_not_configured_without_key(fake: StabilityFake) -> None:
    info = StabilityProvider({}, fake.client()).info()
    assert info.configured is False and "STABILITY_API_KEY" in info.setup_hint

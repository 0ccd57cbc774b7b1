"""The AUTOMATIC1111 adapter against the fake web UI API."""

from __future__ import annotations

import base64
import io
import socket

import httpx
import pytest
from PIL import Image

from context_server.adapters.providers.base import ProviderRequest
from context_server.adapters.providers.sd_webui import SdWebUIProvider
from context_server.errors import InvalidInput, ProviderError
from tests.fakes import SdWebUIFake, make_png
from tests.fakes.recorders import ProgressLog, RecordingSleep

pytestmark = pytest.mark.anyio

ENV = {"SD_WEBUI_URL": "http://webui.test:7860"}


@pytest.fixture
def fake() -> SdWebUIFake:
    return SdWebUIFake()


@pytest.fixture
def provider(fake: SdWebUIFake) -> SdWebUIProvider:
    return SdWebUIProvider(ENV, fake.client(), sleep=RecordingSleep(), poll_interval=0.01)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def test_txt2img_sends_the_prompt_and_returns_the_seed_from_info(
    fake: SdWebUIFake, provider: SdWebUIProvider
) -> None:
    log = ProgressLog()
    request = ProviderRequest("a misty forest, 35mm", "webui", 768, 512, negative_prompt="lowres", seed=1234)
    image = await provider.generate(request, log.progress, log.submit)
    body = fake.calls("/sdapi/v1/txt2img")[0].json
    assert body["prompt"] == "a misty forest, 35mm"
    assert (body["negative_prompt"], body["seed"], body["width"], body["height"]) == (
        "lowres",
        1234,
        768,
        512,
    )
    assert image.seed == 1234 and size_of(image.data) == (768, 512)


async def test_random_seed_is_reported_back(provider: SdWebUIProvider) -> None:
    log = ProgressLog()
    image = await provider.generate(ProviderRequest("x", "webui", 512, 512), log.progress, log.submit)
    assert isinstance(image.seed, int) and image.seed >= 0


async def test_progress_is_polled_while_the_generation_runs(
    fake: SdWebUIFake, provider: SdWebUIProvider
) -> None:
    fake.delay = 0.4
    log = ProgressLog()
    await provider.generate(
        ProviderRequest("x", "webui", 512, 512, extra={"steps": 10}), log.progress, log.submit
    )
    sampled = [v for v, m in zip(log.values, log.messages, strict=True) if m and m.startswith("sampling")]
    assert len(sampled) >= 2
    assert sampled == sorted(sampled) and 0 < sampled[-1] < 1
    assert fake.progress_reported, "the fake never saw a progress poll during the run"


async def test_img2img_sends_init_image_and_denoising_strength(
    fake: SdWebUIFake, provider: SdWebUIProvider
) -> None:
    log = ProgressLog()
    source = make_png(512, 512, "src")
    request = ProviderRequest("as a pencil sketch", "webui", 512, 512, init_image=source, strength=0.4)
    await provider.generate(request, log.progress, log.submit)
    body = fake.calls("/sdapi/v1/img2img")[0].json
    assert base64.b64decode(body["init_images"][0]) == source
    assert body["denoising_strength"] == 0.4 and "mask" not in body


async def test_inpaint_sends_a_white_repaint_mask(fake: SdWebUIFake, provider: SdWebUIProvider) -> None:
    log = ProgressLog()
    mask = Image.new("L", (512, 512), 0)
    mask.paste(255, (0, 0, 100, 100))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    request = ProviderRequest("a hat", "webui", 512, 512, init_image=make_png(512, 512), mask=buf.getvalue())
    image = await provider.edit(request, log.progress, log.submit)
    body = fake.calls("/sdapi/v1/img2img")[0].json
    with Image.open(io.BytesIO(base64.b64decode(body["mask"]))) as sent:
        assert sent.getpixel((50, 50)) == 255 and sent.getpixel((300, 300)) == 0
    assert body["denoising_strength"] == 0.75
    assert any("denoising_strength 0.75" in n for n in image.notes)


async def test_size_not_a_multiple_of_8_is_rounded_with_a_note(
    fake: SdWebUIFake, provider: SdWebUIProvider
) -> None:
    log = ProgressLog()
    image = await provider.generate(ProviderRequest("x", "webui", 1000, 563), log.progress, log.submit)
    body = fake.requests[0].json
    assert (body["width"], body["height"]) == (1000, 560)
    assert image.notes == ["size 1000x563 rounded to 1000x560 (multiples of 8)"]


async def test_size_over_2048_is_invalid_input(provider: SdWebUIProvider) -> None:
    log = ProgressLog()
    with pytest.raises(InvalidInput, match="between 64 and 2048"):
        await provider.generate(ProviderRequest("x", "webui", 4096, 512), log.progress, log.submit)


async def test_webui_error_is_reported_without_talk_of_charges(
    fake: SdWebUIFake, provider: SdWebUIProvider
) -> None:
    fake.fail_next(500, on="txt2img")
    log = ProgressLog()
    with pytest.raises(ProviderError) as caught:
        await provider.generate(ProviderRequest("x", "webui", 512, 512), log.progress, log.submit)
    assert caught.value.may_have_charged is False
    assert "charges nothing" in str(caught.value)


async def test_unreachable_webui_is_retried_then_says_could_not_connect() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = RecordingSleep()
    async with httpx.AsyncClient() as client:
        provider = SdWebUIProvider({"SD_WEBUI_URL": f"http://127.0.0.1:{port}"}, client, sleep=sleep)
        log = ProgressLog()
        with pytest.raises(ProviderError, match="could not connect"):
            await provider.generate(ProviderRequest("x", "webui", 512, 512), log.progress, log.submit)
    assert len(sleep.calls) == 3


async def test_not_configured_without_url(fake: SdWebUIFake) -> None:
    provider = SdWebUIProvider({}, fake.client())
    assert provider.info().configured is False and "SD_WEBUI_URL" in provider.info().setup_hint
    assert provider.info().models[0].cost_usd == 0.0
    log = ProgressLog()
    with pytest.raises(ProviderError, match="SD_WEBUI_URL"):
        await provider.generate(ProviderRequest("x", "webui", 512, 512), log.progress, log.submit)

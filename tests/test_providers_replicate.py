"""The Replicate adapter against the fake predictions API: create, poll, download, cancel, resume."""

from __future__ import annotations

import base64
import io

import anyio
import httpx
import pytest
from PIL import Image

from context_server.adapters.providers.base import ProviderRequest
from context_server.adapters.providers.replicate import ReplicateProvider
from context_server.errors import InvalidInput, ProviderError
from tests.fakes import ReplicateFake, make_png, serve_in_thread
from tests.fakes.recorders import ProgressLog, RecordingSleep

pytestmark = pytest.mark.anyio

BASE = "https://api.replicate.test/v1"
ENV = {"REPLICATE_API_TOKEN": "test-key", "REPLICATE_BASE_URL": BASE}


@pytest.fixture
def fake() -> ReplicateFake:
    return ReplicateFake(polls_to_finish=3)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def provider(fake: ReplicateFake, sleep: RecordingSleep) -> ReplicateProvider:
    return ReplicateProvider(ENV, fake.client(), sleep=sleep, poll_interval=0.75)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def test_prediction_is_created_polled_and_downloaded(
    fake: ReplicateFake, provider: ReplicateProvider, sleep: RecordingSleep
) -> None:
    log = ProgressLog()
    prompt = "a koi pond from above, ukiyo-e"
    request = ProviderRequest(prompt, "black-forest-labs/flux-schnell", 1920, 1080, seed=99)
    image = await provider.generate(request, log.progress, log.submit)
    created = fake.calls("/v1/models/black-forest-labs/flux-schnell/predictions")
    assert len(created) == 1
    assert created[0].json["input"]["prompt"] == prompt
    assert created[0].json["input"]["aspect_ratio"] == "16:9" and created[0].json["input"]["seed"] == 99
    assert log.submitted == list(fake.predictions)
    assert len(fake.calls("/v1/predictions/")) == 3
    assert sleep.calls == [0.75, 0.75, 0.75]
    assert log.values == sorted(log.values)
    assert size_of(image.data) == (1344, 768) and image.seed == 99


async def test_seed_is_read_from_the_logs_when_not_given(provider: ReplicateProvider) -> None:
    log = ProgressLog()
    image = await provider.generate(
        ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit
    )
    assert isinstance(image.seed, int)


async def test_replicate_resumes_polling_with_resume_id(
    fake: ReplicateFake, provider: ReplicateProvider
) -> None:
    async with fake.client() as client:
        response = await client.post(
            f"{BASE}/models/black-forest-labs/flux-dev/predictions",
            json={"input": {"prompt": "started before a restart", "aspect_ratio": "1:1"}},
            headers={"Authorization": "Bearer test-key"},
        )
    prediction_id = response.json()["id"]
    log = ProgressLog()
    request = ProviderRequest("started before a restart", "flux-dev", 1024, 1024, resume_id=prediction_id)
    image = await provider.generate(request, log.progress, log.submit)
    creates = [r for r in fake.requests if r.method == "POST"]
    assert len(creates) == 1  # only the one made above: resuming created nothing new
    assert log.submitted == []
    assert fake.predictions[prediction_id]["status"] == "succeeded"
    assert size_of(image.data) == (1024, 1024)
    assert f"resumed prediction {prediction_id}" in image.notes


async def test_a_cancelled_task_leaves_the_prediction_running_so_a_restart_can_resume_it(
    fake: ReplicateFake,
) -> None:
    fake.polls_to_finish = 1000
    provider = ReplicateProvider(ENV, fake.client(), poll_interval=0.01)
    log = ProgressLog()
    with anyio.move_on_after(0.3):
        await provider.generate(ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit)
    assert len(log.submitted) == 1
    assert not fake.calls(f"/v1/predictions/{log.submitted[0]}/cancel")
    assert fake.predictions[log.submitted[0]]["status"] != "canceled"


async def test_failed_prediction_says_may_have_been_charged(
    fake: ReplicateFake, provider: ReplicateProvider
) -> None:
    fake.fail_with = "CUDA out of memory"
    log = ProgressLog()
    with pytest.raises(ProviderError, match="CUDA out of memory") as caught:
        await provider.generate(ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit)
    assert caught.value.may_have_charged is True and "may have been charged" in str(caught.value)


async def test_nsfw_failure_is_reported_as_a_safety_refusal(
    fake: ReplicateFake, provider: ReplicateProvider
) -> None:
    fake.fail_with = "NSFW content detected. Try running it again, or try a different prompt."
    log = ProgressLog()
    with pytest.raises(ProviderError, match="safety checker"):
        await provider.generate(ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit)


async def test_flux_dev_image_to_image_sends_a_data_uri_and_prompt_strength(
    fake: ReplicateFake, provider: ReplicateProvider
) -> None:
    log = ProgressLog()
    source = make_png(640, 480, "src")
    request = ProviderRequest("as stained glass", "flux-dev", 640, 480, init_image=source, strength=0.55)
    image = await provider.generate(request, log.progress, log.submit)
    sent = fake.calls("/models/black-forest-labs/flux-dev/predictions")[0].json["input"]
    assert sent["image"].startswith("data:image/png;base64,")
    assert base64.b64decode(sent["image"].partition(",")[2]) == source
    assert sent["prompt_strength"] == 0.55 and "aspect_ratio" not in sent
    assert size_of(image.data) == (640, 480)


async def test_schnell_with_an_input_image_is_invalid_input(provider: ReplicateProvider) -> None:
    log = ProgressLog()
    request = ProviderRequest("x", "flux-schnell", 512, 512, init_image=make_png(64, 64))
    with pytest.raises(InvalidInput, match="flux-dev"):
        await provider.generate(request, log.progress, log.submit)


async def test_masked_edit_uses_flux_fill_pro_with_a_white_mask(
    fake: ReplicateFake, provider: ReplicateProvider
) -> None:
    log = ProgressLog()
    mask = Image.new("LA", (256, 256), (0, 255))
    mask.paste((0, 0), (0, 0, 128, 256))  # left half transparent = repaint
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    request = ProviderRequest(
        "a door", "flux-schnell", 256, 256, init_image=make_png(256, 256), mask=buf.getvalue()
    )
    image = await provider.edit(request, log.progress, log.submit)
    sent = fake.calls("/models/black-forest-labs/flux-fill-pro/predictions")[0].json["input"]
    with Image.open(io.BytesIO(base64.b64decode(sent["mask"].partition(",")[2]))) as sent_mask:
        assert sent_mask.getpixel((10, 10)) == 255 and sent_mask.getpixel((200, 10)) == 0
    assert image.model == "black-forest-labs/flux-fill-pro"
    assert (
        "masked edits use black-forest-labs/flux-fill-pro, not black-forest-labs/flux-schnell" in image.notes
    )


async def test_create_throttled_429_is_retried_but_a_create_500_is_not(
    fake: ReplicateFake, provider: ReplicateProvider, sleep: RecordingSleep
) -> None:
    log = ProgressLog()
    fake.fail_next(429, times=1, retry_after="2", on="/models/")
    await provider.generate(ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit)
    assert sleep.calls[0] == 2.0
    fake.fail_next(500, times=1, on="/models/")
    with pytest.raises(ProviderError, match="may have been charged"):
        await provider.generate(ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit)
    assert len(fake.calls("/models/")) == 3


async def test_a_failing_poll_is_retried_because_reading_cannot_charge(
    fake: ReplicateFake, provider: ReplicateProvider
) -> None:
    log = ProgressLog()
    fake.fail_next(500, times=1, on="/v1/predictions/")
    image = await provider.generate(
        ProviderRequest("x", "flux-schnell", 1024, 1024), log.progress, log.submit
    )
    assert image.data.startswith(b"\x89PNG")


def test_end_to_end_over_a_real_local_server() -> None:
    fake = ReplicateFake(polls_to_finish=2)
    base, stop = serve_in_thread(fake.app)

    async def run() -> bytes:
        async with httpx.AsyncClient() as client:
            provider = ReplicateProvider(fake.env(base), client, poll_interval=0.01)
            log = ProgressLog()
            image = await provider.generate(
                ProviderRequest("over tcp", "flux-schnell", 512, 512), log.progress, log.submit
            )
            return image.data

    try:
        data = anyio.run(run)
    finally:
        stop()
    assert size_of(data) == (1024, 1024)
    assert fake.requests[0].prompt == "over tcp"

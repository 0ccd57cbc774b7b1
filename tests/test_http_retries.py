"""Retries never pay twice: what is retried, what is not, and what each failure says."""

from __future__ import annotations

import httpx
import pytest

from context_server.adapters.providers._http import HttpCaller, RetryPolicy
from context_server.adapters.providers.base import ProviderRequest
from context_server.adapters.providers.openai import OpenAIProvider
from context_server.adapters.providers.stability import StabilityProvider
from context_server.errors import ProviderError
from tests.fakes import OpenAIFake, StabilityFake, serve_in_thread
from tests.fakes.recorders import ProgressLog, RecordingSleep

pytestmark = pytest.mark.anyio

KEY = "sk-test-secret-0123456789"


def openai(fake: OpenAIFake, sleep: RecordingSleep, key: str = "test-key") -> OpenAIProvider:
    fake.key = key
    env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": "https://api.openai.test/v1"}
    return OpenAIProvider(env, fake.client(), sleep=sleep)


def request(prompt: str = "a lighthouse at dusk") -> ProviderRequest:
    return ProviderRequest(prompt=prompt, model="gpt-image-1", width=1024, height=1024)


async def test_429_with_retry_after_is_retried_then_succeeds() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(429, times=2, retry_after="3")
    image = await openai(fake, sleep).generate(request(), log.progress, log.submit)
    assert image.data.startswith(b"\x89PNG")
    assert sleep.calls == [3.0, 3.0]
    assert len(fake.calls("/images/generations")) == 3


async def test_503_without_retry_after_backs_off_exponentially_with_jitter() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(503, times=3)
    await openai(fake, sleep).generate(request(), log.progress, log.submit)
    assert len(sleep.calls) == 3
    for attempt, delay in enumerate(sleep.calls):
        base = 0.5 * 2**attempt
        assert base / 2 <= delay <= base
    assert len(fake.calls("/images/generations")) == 4


async def test_429_that_never_clears_gives_up_and_says_nothing_was_charged() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(429, times=100, retry_after="1")
    with pytest.raises(ProviderError) as caught:
        await openai(fake, sleep).generate(request(), log.progress, log.submit)
    assert caught.value.may_have_charged is False
    assert caught.value.retryable is True
    assert "Nothing was charged" in str(caught.value)
    assert len(fake.calls("/images/generations")) == RetryPolicy().attempts


async def test_retry_after_longer_than_the_cap_is_not_waited_for() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(429, times=1, retry_after="3600")
    with pytest.raises(ProviderError, match="wait 3600 s"):
        await openai(fake, sleep).generate(request(), log.progress, log.submit)
    assert sleep.calls == []
    assert len(fake.calls("/images/generations")) == 1


async def test_500_after_body_sent_is_not_retried_and_says_may_have_been_charged() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(500, times=1)
    with pytest.raises(ProviderError) as caught:
        await openai(fake, sleep).generate(request(), log.progress, log.submit)
    assert caught.value.may_have_charged is True
    assert "may have been charged" in str(caught.value)
    assert len(fake.calls("/images/generations")) == 1
    assert sleep.calls == []


async def test_429_insufficient_quota_is_not_retried_and_says_quota() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(429, times=1, quota=True)
    with pytest.raises(ProviderError, match="out of credits or quota"):
        await openai(fake, sleep).generate(request(), log.progress, log.submit)
    assert len(fake.calls("/images/generations")) == 1


async def test_402_says_out_of_credits() -> None:
    fake, sleep, log = StabilityFake(), RecordingSleep(), ProgressLog()
    fake.fail_next(402)
    provider = StabilityProvider({"STABILITY_API_KEY": "test-key"}, fake.client(), sleep=sleep)
    with pytest.raises(ProviderError, match="out of credits"):
        await provider.generate(ProviderRequest("a fox", "core", 1024, 1024), log.progress, log.submit)


async def test_401_says_check_the_key_and_never_shows_it() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    provider = OpenAIProvider({"OPENAI_API_KEY": KEY}, fake.client(), sleep=sleep)  # fake expects another key
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request(), log.progress, log.submit)
    message = str(caught.value)
    assert "check OPENAI_API_KEY" in message
    assert KEY not in message and "sk-" not in message
    assert caught.value.may_have_charged is False
    assert len(fake.requests) == 1


async def test_openai_moderation_block_is_reported_as_content_policy() -> None:
    fake, sleep, log = OpenAIFake(), RecordingSleep(), ProgressLog()
    fake.content_policy = True
    with pytest.raises(ProviderError, match="content policy"):
        await openai(fake, sleep).generate(request(), log.progress, log.submit)


async def test_stability_403_content_moderation_is_reported_as_content_policy_not_bad_key() -> None:
    fake, sleep, log = StabilityFake(), RecordingSleep(), ProgressLog()
    fake.content_policy = True
    provider = StabilityProvider({"STABILITY_API_KEY": "test-key"}, fake.client(), sleep=sleep)
    with pytest.raises(ProviderError) as caught:
        await provider.generate(ProviderRequest("a fox", "core", 1024, 1024), log.progress, log.submit)
    assert "content policy" in str(caught.value)
    assert "STABILITY_API_KEY" not in str(caught.value)


def caller(handler: httpx.MockTransport, sleep: RecordingSleep) -> HttpCaller:
    return HttpCaller(
        httpx.AsyncClient(transport=handler), provider="openai", key_env="OPENAI_API_KEY", sleep=sleep
    )


async def test_connect_error_is_retried_then_succeeds() -> None:
    tries: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        tries.append(1)
        if len(tries) < 3:
            raise httpx.ConnectError("connection refused", request=req)
        return httpx.Response(200, json={"ok": True})

    sleep = RecordingSleep()
    response = await caller(httpx.MockTransport(handler), sleep).request("POST", "https://x.test/a", json={})
    assert response.json() == {"ok": True}
    assert len(tries) == 3 and len(sleep.calls) == 2


async def test_connect_error_every_time_says_unreachable_and_nothing_charged() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=req)

    with pytest.raises(ProviderError) as caught:
        await caller(httpx.MockTransport(handler), RecordingSleep()).request(
            "POST", "https://x.test/a", json={}
        )
    assert caught.value.may_have_charged is False
    assert "could not connect" in str(caught.value) and "nothing was charged" in str(caught.value)


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
async def test_failure_after_send_is_not_retried_and_may_have_charged(
    error: type[httpx.TransportError],
) -> None:
    tries: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        tries.append(1)
        raise error("dropped", request=req)

    sleep = RecordingSleep()
    with pytest.raises(ProviderError, match="may have been charged") as caught:
        await caller(httpx.MockTransport(handler), sleep).request("POST", "https://x.test/a", json={})
    assert caught.value.may_have_charged is True
    assert tries == [1] and sleep.calls == []


async def test_idempotent_get_is_retried_after_a_500() -> None:
    statuses = [500, 502, 200]

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(statuses.pop(0), json={"status": "processing"})

    response = await caller(httpx.MockTransport(handler), RecordingSleep()).request(
        "GET", "https://x.test/predictions/1", idempotent=True
    )
    assert response.status_code == 200 and statuses == []


async def test_retry_after_as_http_date_is_honoured() -> None:
    statuses = [503, 200]

    def handler(req: httpx.Request) -> httpx.Response:
        status = statuses.pop(0)
        headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"} if status == 503 else {}
        return httpx.Response(status, headers=headers, json={})

    sleep = RecordingSleep()
    await caller(httpx.MockTransport(handler), sleep).request("POST", "https://x.test/a", json={})
    assert sleep.calls == [0.0]  # a date in the past means "now"


def test_slow_provider_over_a_real_socket_times_out_and_says_may_have_been_charged() -> None:
    import anyio

    fake = OpenAIFake()
    fake.delay = 2.0
    base, stop = serve_in_thread(fake.app)

    async def run() -> ProviderError:
        async with httpx.AsyncClient() as client:
            http = HttpCaller(client, provider="openai", key_env="OPENAI_API_KEY", sleep=RecordingSleep())
            try:
                await http.request("POST", f"{base}/v1/images/generations", json={"prompt": "x"}, timeout=0.3)
            except ProviderError as exc:
                return exc
        raise AssertionError("expected a timeout")

    try:
        error = anyio.run(run)
    finally:
        stop()
    assert error.may_have_charged is True
    assert "timed out" in str(error)
    assert len(fake.requests) == 1

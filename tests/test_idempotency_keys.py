"""A `request_id` names one request: reused with other parameters it is refused, never answered with
another request's image (SPEC §8), in one process and across a restart on the same data directory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mcp import Client

from context_server.app import App
from context_server.server import build_server
from context_server.settings import Settings

from .conftest import call, call_error
from .fakes_counting import CountingProvider

pytestmark = pytest.mark.anyio


def _counting() -> CountingProvider:
    provider = CountingProvider()
    provider.name = "placeholder"
    return provider


async def test_a_request_id_reused_with_another_prompt_is_refused_naming_the_key(
    make_settings: Callable[..., Settings],
) -> None:
    provider = _counting()
    app = App.create(make_settings(), providers=[provider])
    try:
        async with Client(build_server(app)) as client:
            first = await call(client, "generate_image", prompt="a kite", width=64, height=64, request_id="key-7")
            text = await call_error(client, "generate_image", prompt="a lighthouse", width=64, height=64,
                                    request_id="key-7")
            assert "request_id 'key-7'" in text and "prompt" in text and "new request_id" in text
            assert first["job_id"] in text
            # Another size is another request too, and the first call's result stays its own.
            text = await call_error(client, "generate_image", prompt="a kite", width=128, height=64,
                                    request_id="key-7")
            assert "width" in text
            assert provider.calls == 1
            assert app.store.query("select count(*) as n from jobs")[0]["n"] == 1
            # The same parameters again (waiting or not) are the same request: the first result, no new call.
            again = await call(client, "generate_image", prompt="a kite", width=64, height=64, request_id="key-7",
                               wait=False)
            assert again["image_id"] == first["image_id"] and again["prompt"] == "a kite"
            assert provider.calls == 1
    finally:
        await app.aclose()


async def test_the_binding_survives_a_restart_on_the_same_data_directory(
    make_settings: Callable[..., Settings],
) -> None:
    before = App.create(make_settings(), providers=[_counting()])
    try:
        async with Client(build_server(before)) as client:
            first = await call(client, "generate_image", prompt="a red barn", width=64, height=64, request_id="r-1")
    finally:
        await before.aclose()

    provider = _counting()
    after = App.create(make_settings(), providers=[provider])
    try:
        async with Client(build_server(after)) as client:
            text = await call_error(client, "generate_image", prompt="a blue boat", width=64, height=64,
                                    request_id="r-1")
            assert "request_id 'r-1'" in text and "different request" in text
            same = await call(client, "generate_image", prompt="a red barn", width=64, height=64, request_id="r-1")
            assert same["image_id"] == first["image_id"] and same["prompt"] == "a red barn"
            assert provider.calls == 0
    finally:
        await after.aclose()


async def test_a_job_recorded_before_hashes_were_kept_is_checked_against_its_stored_request(
    make_settings: Callable[..., Settings],
) -> None:
    app = App.create(make_settings(), providers=[_counting()])
    try:
        async with Client(build_server(app)) as client:
            await call(client, "generate_image", prompt="an old kite", width=64, height=64, request_id="old")
            with app.store.write() as db:  # as a row written by an earlier version looks
                db.execute("update jobs set request_hash = null")
            text = await call_error(client, "generate_image", prompt="a new kite", width=64, height=64,
                                    request_id="old")
            assert "request_id 'old'" in text
            assert (await call(client, "generate_image", prompt="an old kite", width=64, height=64,
                               request_id="old"))["prompt"] == "an old kite"
    finally:
        await app.aclose()

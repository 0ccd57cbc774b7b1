"""Real provider adapters inside the whole server, against the fakes in their wire formats."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from context_server.adapters.embedder import Embedder
from context_server.adapters.providers.base import Provider
from context_server.adapters.providers.openai import OpenAIProvider
from context_server.adapters.providers.placeholder import PlaceholderProvider
from context_server.adapters.providers.remote import build_remote_providers
from context_server.adapters.providers.replicate import ReplicateProvider
from context_server.app import App
from context_server.server import build_server
from context_server.settings import Settings
from tests.fakes import FakeProvider, OpenAIFake, ReplicateFake, SdWebUIFake, StabilityFake, serve_in_thread

from .conftest import call, call_error

pytestmark = pytest.mark.anyio


async def test_the_provider_receives_the_enriched_final_prompt(make_settings: Callable[..., Settings]) -> None:
    fake = OpenAIFake()
    env = OpenAIFake.env("http://fake") | {"CONTEXT_SERVER_HOME": str(make_settings().home)}
    settings = Settings.from_env(env)
    client = fake.client()
    app = App.create(settings, http_client=client,
                     providers=[PlaceholderProvider(), OpenAIProvider(settings.provider_env, client)])
    async with Client(build_server(app)) as mcp:
        data = await call(mcp, "generate_image", prompt="a heron at dawn", template="watercolour",
                          provider="openai", model="gpt-image-1", width=1024, height=1024)
    await app.aclose()
    assert data["status"] == "completed" and data["provider"] == "openai"
    assert [r.prompt for r in fake.requests] == [data["final_prompt"]]
    assert data["final_prompt"].startswith("A loose watercolour painting of a heron at dawn")
    assert data["cost_usd"] > 0


async def test_a_daily_budget_refuses_a_paid_call_before_the_provider_is_asked(
    make_settings: Callable[..., Settings],
) -> None:
    fake = OpenAIFake()
    settings = Settings.from_env(OpenAIFake.env("http://fake") | {"CONTEXT_SERVER_HOME": str(make_settings().home)})
    client = fake.client()
    app = App.create(settings, http_client=client,
                     providers=[PlaceholderProvider(), OpenAIProvider(settings.provider_env, client)])
    app.profiles.update("local", {"daily_budget_usd": 0.01})
    async with Client(build_server(app)) as mcp:
        text = await call_error(mcp, "generate_image", prompt="x", provider="openai", width=1024, height=1024)
        free = await call(mcp, "generate_image", prompt="x", width=64, height=64)
        usage = await call(mcp, "get_usage", period="day")
    await app.aclose()
    assert "daily budget" in text and "placeholder" in text
    assert fake.requests == []
    assert free["status"] == "completed"
    assert usage["daily_budget_usd"] == 0.01 and usage["budget_left_usd"] == 0.01
    assert usage["providers"] == [{"provider": "placeholder", "generations": 1, "cost_usd": 0.0}]


async def test_a_replicate_job_interrupted_by_a_restart_resumes_polling_the_same_prediction(
    make_settings: Callable[..., Settings],
) -> None:
    fake = ReplicateFake(polls_to_finish=3)
    settings = Settings.from_env(ReplicateFake.env("http://fake") | {"CONTEXT_SERVER_HOME": str(make_settings().home),
                                                                     "CONTEXT_SERVER_WAIT_SECONDS": "0"})
    client = fake.client()

    def build(poll: float) -> App:
        return App.create(settings, http_client=client, providers=[
            PlaceholderProvider(), ReplicateProvider(settings.provider_env, client, poll_interval=poll)])

    first = build(poll=30.0)  # polls so slowly that it cannot finish before we "crash" it
    async with Client(build_server(first)) as mcp:
        started = await call(mcp, "generate_image", prompt="a comet", provider="replicate", width=512, height=512)
        for _ in range(50):
            if first.jobs.get("local", started["job_id"])["provider_job_id"]:
                break
            await anyio.sleep(0.05)
    job = first.jobs.get("local", started["job_id"])
    assert job["status"] == "running" and job["provider_job_id"]
    await first.runner.aclose()  # the process dies: its task is gone, the row still says running
    with first.store.write() as db:  # the row now names a dead process on this host
        db.execute("update jobs set owner = ? where id = ?", [f"{socket.gethostname()}:999999:dead", job["id"]])

    second = build(poll=0.01)
    async with Client(build_server(second)) as mcp:
        for _ in range(200):
            status = await call(mcp, "get_generation", job_id=job["id"])
            if status["status"] != "running":
                break
            await anyio.sleep(0.05)
    await second.aclose()
    await first.aclose()
    creates = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]
    assert len(creates) == 1, "resuming must not create a second (paid) prediction"
    assert status["status"] == "completed" and Path(status["path"]).is_file()


async def test_an_interrupted_job_that_cannot_resume_is_failed_with_a_reason(
    make_settings: Callable[..., Settings],
) -> None:
    app = App.create(make_settings())
    app.jobs.create("local", "f" * 32, request_id=None, kind="generate", params={}, provider="placeholder",
                    model="placeholder-1", incognito=False)
    with app.store.write() as db:
        db.execute("update jobs set owner = ?", [f"{socket.gethostname()}:999999:dead"])
    await app.start()
    job = app.jobs.get("local", "f" * 32)
    await app.aclose()
    assert job["status"] == "failed" and "restart" in job["error"]


@pytest.mark.slow
async def test_the_installed_server_reaches_a_fake_provider_through_its_base_url(tmp_path: Path) -> None:
    fake = OpenAIFake()
    base_url, stop = serve_in_thread(fake.app)
    try:
        exe = str(Path(sys.executable).parent / "context-server")
        env = {**os.environ, **OpenAIFake.env(base_url), "CONTEXT_SERVER_HOME": str(tmp_path / "home")}
        async with Client(StdioServerParameters(command=exe, args=[], env=env)) as mcp:
            data = await call(mcp, "generate_image", prompt="a paper crane", provider="openai",
                              model="dall-e-3", width=1024, height=1024)
            providers = await call(mcp, "list_providers")
    finally:
        stop()
    assert data["status"] == "completed" and Path(data["path"]).is_file()
    assert fake.requests and fake.requests[-1].prompt == data["final_prompt"]
    assert next(p for p in providers["providers"] if p["name"] == "openai")["configured"] is True


def _provider(name: str, env: dict[str, str], client: httpx.AsyncClient) -> Provider:
    return next(p for p in build_remote_providers(env, client) if p.name == name)


# provider, its fake, a text-to-image model, a model that edits
PROVIDERS = [
    ("openai", OpenAIFake, "gpt-image-1", "gpt-image-1"),
    ("stability", StabilityFake, "core", "inpaint"),
    ("sd_webui", SdWebUIFake, "webui", "webui"),
    ("replicate", ReplicateFake, "black-forest-labs/flux-schnell", "black-forest-labs/flux-dev"),
]


@pytest.mark.parametrize(("name", "fake_cls", "model", "edit_model"), PROVIDERS, ids=[p[0] for p in PROVIDERS])
async def test_every_provider_receives_the_enriched_prompt_and_edits_where_it_can(
    make_settings: Callable[..., Settings], embedder: Embedder, name: str, fake_cls: type[FakeProvider],
    model: str, edit_model: str,
) -> None:
    fake = fake_cls()
    env = fake_cls.env("http://fake")
    settings = Settings.from_env(env | {"CONTEXT_SERVER_HOME": str(make_settings().home)})
    client = fake.client()
    provider = _provider(name, settings.provider_env, client)
    if name == "replicate":
        provider = ReplicateProvider(settings.provider_env, client, poll_interval=0.01)
    app = App.create(settings, http_client=client, providers=[PlaceholderProvider(), provider], embedder=embedder)
    async with Client(build_server(app)) as mcp:
        await call(mcp, "save_memory", content="stormy indigo palette", kind="style", pinned=True)
        made = await call(mcp, "generate_image", prompt="a heron at dawn", template="watercolour",
                          provider=name, model=model, aspect_ratio="1:1")
        prompts = [r.prompt for r in fake.requests if r.prompt]
        assert prompts[-1] == made["final_prompt"]
        assert "a heron at dawn" in made["final_prompt"] and "stormy indigo palette" in made["final_prompt"]
        edited = await call(mcp, "edit_image", image="the previous one", instruction="add falling snow",
                            provider=name, model=edit_model)
        assert edited["parent_id"] == made["image_id"]
        assert edited["applied"]["reference"]["mode"] == "image_to_image"
        sent = fake.requests[-1] if name != "replicate" else next(
            r for r in reversed(fake.requests) if r.method == "POST" and r.path.endswith("/predictions"))
        assert sent.files or (sent.json and any("image" in k for k in (sent.json.get("input") or sent.json)))
    await app.aclose()

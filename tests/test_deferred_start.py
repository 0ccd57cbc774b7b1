"""The stdio server answers its client before it opens the data directory (`DeferredApp`), and nothing a
client does can tell, except that the first answers come sooner."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client

from context_server.adapters.embedder import Embedder
from context_server.app import App
from context_server.server import build_server
from context_server.server.deferred import DeferredApp
from context_server.settings import Settings

from .conftest import call, call_error, stdio_server

pytestmark = pytest.mark.anyio


class Opener:
    """The production factory (App.create), counting its calls and keeping what it made for clean-up."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.made: list[App] = []

    def __call__(self, settings: Settings) -> App:
        app = App.create(settings, embedder=self.embedder)
        self.made.append(app)
        return app


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    with anyio.move_on_after(seconds):
        while not condition():
            await anyio.sleep(0.02)
    return condition()


class Deferred:
    """A stdio-style server over a `DeferredApp` whose factory is an `Opener`; closed by the fixture."""

    def __init__(self, embedder: Embedder) -> None:
        self.opener = Opener(embedder)
        self.handles: list[DeferredApp] = []

    def __call__(self, settings: Settings, *, fallback_seconds: float = 60) -> tuple[DeferredApp, Any]:
        handle = DeferredApp(settings, self.opener, fallback_seconds=fallback_seconds)
        self.handles.append(handle)
        return handle, build_server(cast(App, handle))


@pytest.fixture
async def deferred(embedder: Embedder) -> AsyncIterator[Deferred]:
    made = Deferred(embedder)
    yield made
    for handle in made.handles:
        await handle.aclose()


async def test_tools_list_is_answered_before_the_app_opens_and_matches_the_eager_server(
    make_settings: Callable[..., Settings], deferred: Deferred, app: App,
) -> None:
    handle, server = deferred(make_settings())
    async with Client(server) as client:
        assert not handle.opened, "the handshake alone must not open the data directory"
        tools = (await client.list_tools()).tools
        async with Client(build_server(app)) as eager:
            expected = (await eager.list_tools()).tools
        assert [t.model_dump() for t in tools] == [t.model_dump() for t in expected]
        assert await wait_until(lambda: handle.opened), "the first answer releases the opening"
        saved = await call(client, "save_memory", content="muted watercolour", kind="style", pinned=True)
        made = await call(client, "generate_image", prompt="a lighthouse", width=64, height=64)
    assert saved["memory_id"] and made["status"] == "completed"
    assert "muted watercolour" in made["final_prompt"]
    assert len(deferred.opener.made) == 1 and deferred.opener.made[0].started


async def test_a_tool_call_straight_after_the_handshake_opens_the_app_once(
    make_settings: Callable[..., Settings], deferred: Deferred,
) -> None:
    _, server = deferred(make_settings())
    async with Client(server) as client:
        made = await call(client, "generate_image", prompt="a red kite", width=64, height=64)
        listed = await call(client, "list_recent_generations")
        await anyio.sleep(0.2)  # the opener, released by that answer, finds the App already open
    assert listed["generations"][0]["image_id"] == made["image_id"]
    assert len(deferred.opener.made) == 1 and deferred.opener.made[0].started


async def test_without_any_request_the_app_opens_after_the_fallback_and_recovers_interrupted_jobs(
    make_settings: Callable[..., Settings], embedder: Embedder, deferred: Deferred,
) -> None:
    settings = make_settings()
    before = App.create(settings, embedder=embedder)  # a previous process left a job running, then died
    before.jobs.create("local", "e" * 32, request_id=None, kind="generate", params={}, provider="placeholder",
                       model="placeholder-1", incognito=False)
    with before.store.write() as db:
        db.execute("update jobs set owner = ?", [f"{socket.gethostname()}:999999:dead"])
    before.store.close()

    _, server = deferred(settings, fallback_seconds=0.2)
    async with Client(server):
        assert await wait_until(lambda: bool(deferred.opener.made) and deferred.opener.made[0].started)
        job = deferred.opener.made[0].jobs.get("local", "e" * 32)
    assert job["status"] == "failed" and "restart" in job["error"]


async def test_a_data_directory_that_cannot_be_opened_is_reported_and_the_server_stays_up(
    make_settings: Callable[..., Settings], deferred: Deferred,
) -> None:
    settings = make_settings()
    settings.home.mkdir(parents=True)
    (settings.home / "context.db").mkdir()  # SQLite cannot open a directory
    _, server = deferred(settings)
    async with Client(server) as client:
        assert (await client.list_tools()).tools
        first = await call_error(client, "list_recent_generations")
        (settings.home / "context.db").rmdir()  # the user fixes it; the next call opens the App
        second = await call(client, "list_recent_generations")
    assert f"the data directory {settings.home} could not be opened" in first
    assert "writable directory" in first
    assert second == {"generations": [], "next_cursor": None}


def test_answering_tools_list_imports_no_store_index_or_image_code(home: Path) -> None:
    """The cold-start design, checked where it can regress: building the stdio server must not import the
    App or the libraries it opens (each import here moved the first tools/list later; docs/benchmarks.md)."""
    script = (
        "import sys\n"
        "from typing import cast\n"
        "from context_server.cli import main\n"
        "from context_server.server import build_server\n"
        "from context_server.server.deferred import DeferredApp\n"
        "from context_server.settings import Settings\n"
        f"build_server(cast('App', DeferredApp(Settings.from_env({{'CONTEXT_SERVER_HOME': {str(home)!r}}}))))\n"
        "heavy = ('context_server.app', 'context_server.adapters.store', 'context_server.domain.memory.service',\n"
        "         'sqlite_utils', 'numpy', 'PIL', 'httpx', 'chromadb', 'onnxruntime', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    assert not home.exists(), "building the server must not create the data directory either"


async def test_the_spawned_stdio_server_answers_exactly_as_the_eager_server(home: Path, app: App) -> None:
    """The real `context-server` over stdio builds the SDK's protocol models on first use
    (`startup.models_built_on_first_use`): its capabilities, every list, validation errors and a tool result
    must be what the eager in-process server answers."""
    async def answers(client: Client) -> list[Any]:
        assert client.server_capabilities is not None
        bad = await client.call_tool("save_memory", {"content": "x", "kind": "mood"})
        wrong_type = await client.call_tool("generate_image", {"prompt": "a kite", "width": "wide"})
        made = await call(client, "generate_image", prompt="a red kite", width=64, height=64)
        return [
            client.server_capabilities.model_dump(),
            [t.model_dump() for t in (await client.list_tools()).tools],
            [p.model_dump() for p in (await client.list_prompts()).prompts],
            [r.model_dump() for r in (await client.list_resource_templates()).resource_templates],
            [bad.is_error, bad.content[0].model_dump(), wrong_type.is_error],
            sorted(made),
        ]

    async with Client(stdio_server(home / "spawned")) as over_stdio:
        from_stdio = await answers(over_stdio)
    async with Client(build_server(app)) as eager:
        from_eager = await answers(eager)
    assert from_stdio == from_eager
    assert from_stdio[4][0] and "mood" in str(from_stdio[4][1]) and from_stdio[4][2]


def test_models_defined_in_the_block_build_on_first_use_and_validate_the_same() -> None:
    from pydantic import BaseModel, ValidationError

    from context_server.startup import models_built_on_first_use

    with models_built_on_first_use():
        class Deferred(BaseModel):
            width: int
            tags: list[str] = []

    class Eager(BaseModel):
        width: int
        tags: list[str] = []

    assert not Deferred.__pydantic_complete__ and Eager.__pydantic_complete__
    assert Deferred(width="64").model_dump() == Eager(width="64").model_dump() == {"width": 64, "tags": []}
    assert Deferred.__pydantic_complete__
    with pytest.raises(ValidationError, match="width"):
        Deferred(width="wide")
    assert Deferred.model_json_schema()["properties"] == Eager.model_json_schema()["properties"]

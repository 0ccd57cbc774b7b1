"""Shared fixtures: real SQLite, real files and the real MCP server in temp directories.

Async tests run on anyio's asyncio backend: test modules set `pytestmark = pytest.mark.anyio`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from context_server.adapters.embedder import Embedder
from context_server.adapters.store import Store
from context_server.app import App
from context_server.domain.memory.service import MemoryService
from context_server.domain.search.indexing import Indexer
from context_server.server import build_server
from context_server.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _share_the_loaded_model(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> None:
    """Every in-process App uses the session's loaded model (the same real Embedder) instead of loading
    and exporting its own in the background, which took seconds of CPU in the middle of timed tests."""
    monkeypatch.setattr("context_server.app.Embedder", lambda *args, **kwargs: embedder)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def make_settings(home: Path) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        return Settings.from_env({"CONTEXT_SERVER_HOME": str(home), **env})

    return make


@pytest.fixture
async def app(make_settings: Callable[..., Settings], embedder: Embedder) -> AsyncIterator[App]:
    application = App.create(make_settings(), embedder=embedder)
    try:
        yield application
    finally:
        await application.aclose()


@pytest.fixture
async def client(app: App) -> AsyncIterator[Client]:
    async with Client(build_server(app)) as c:
        yield c


WORKTREE = Path(__file__).resolve().parent.parent


def stdio_server(home: Path, **env: str) -> StdioServerParameters:
    """This checkout's server over stdio, the way Claude Desktop starts one."""
    return StdioServerParameters(
        command=sys.executable, args=["-m", "context_server.cli"], cwd=str(WORKTREE),
        env={**os.environ, "PYTHONPATH": str(WORKTREE), "CONTEXT_SERVER_HOME": str(home),
             "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **env})


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed and return its structured content."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **args: Any) -> str:
    """Call a tool that must fail and return the error text."""
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    return result.content[0].text  # type: ignore[union-attr]


# --- memory / indexing (embedder loaded once per session; SQLite and Chroma per test) -------------------


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The production set-up: the packaged weights exported once to ONNX in a cache directory. Servers the
    tests spawn share that directory (`CONTEXT_SERVER_MODEL_CACHE`), so the export happens once a run and
    never in the user's own cache."""
    cache = tmp_path_factory.mktemp("models")
    os.environ["CONTEXT_SERVER_MODEL_CACHE"] = str(cache)
    model = Embedder(threads=2, cache_dir=cache)
    model.start()
    model.wait(timeout=120)
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    db = Store(settings.db_path)
    db.migrate()
    yield db
    db.close()


@pytest.fixture
def make_indexer(settings: Settings, store: Store, embedder: Embedder) -> Iterator[Callable[..., Indexer]]:
    """Build Indexers as the server does (lock file in the data directory); `take_index()` is up to the
    test. A second one over the same directory plays a second server process."""
    made: list[Indexer] = []

    def make(*, model: Embedder | None = None) -> Indexer:
        idx = Indexer.for_settings(settings, store, model or embedder)
        made.append(idx)
        return idx

    yield make
    for idx in made:
        idx.close()


@pytest.fixture
def indexer(make_indexer: Callable[..., Indexer]) -> Indexer:
    idx = make_indexer()
    assert idx.take_index()
    return idx


@pytest.fixture
def memories(store: Store, indexer: Indexer) -> MemoryService:
    return MemoryService(store, indexer)


# --- end memory / indexing ------------------------------------------------------------------------------

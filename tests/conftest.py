"""Shared fixtures: real SQLite, real files and the real MCP server in temp directories.

Async tests run on anyio's asyncio backend: test modules set `pytestmark = pytest.mark.anyio`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from mcp import Client, StdioServerParameters

from context_server.adapters.embedder import Embedder, default_model_path
from context_server.adapters.index import VectorIndex
from context_server.adapters.onnx_encoder import onnx_path_for
from context_server.adapters.store import Store
from context_server.app import App, build_indexer
from context_server.domain.memory.service import Memories
from context_server.domain.search.indexing import Indexer
from context_server.server import build_server
from context_server.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _share_the_loaded_model(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """An in-process App built without an embedder gets the session's loaded model (the same real Embedder)
    instead of loading its own in the background, which took seconds of CPU in the middle of timed tests.
    The model is asked for only when such an App is built, so tests that never build one (the template
    parser, settings, guards) never load it."""
    monkeypatch.setattr("context_server.app.Embedder",
                        lambda *args, **kwargs: request.getfixturevalue("embedder"))


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


def tests_model_cache() -> Path:
    """Where the tests keep the model's ONNX export: a directory of their own (never the user's model cache),
    kept across runs and clones. The export's file name carries a hash of the packaged weights and the
    ONNX Runtime version (`onnx_path_for`), so new weights or a new runtime export again, once. Exports
    are written atomically, so runs side by side share it safely. `CONTEXT_SERVER_TEST_MODEL_CACHE` moves it."""
    chosen = os.environ.get("CONTEXT_SERVER_TEST_MODEL_CACHE")
    if chosen:
        return Path(chosen)
    return Path(platformdirs.user_cache_dir("context-server", appauthor=False)) / "test-models"


#: Set at import, before any test runs: every server the tests spawn, and every in-process one, finds the
#: export here instead of exporting its own.
os.environ["CONTEXT_SERVER_MODEL_CACHE"] = str(tests_model_cache())


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The production set-up: the packaged weights exported to ONNX in a cache directory (once per machine,
    see `tests_model_cache`); servers the tests spawn share it through `CONTEXT_SERVER_MODEL_CACHE`."""
    cache = tests_model_cache()
    current = onnx_path_for(cache, default_model_path(), Embedder.model_name)
    for stale in cache.glob(f"{Embedder.model_name}-*.onnx"):  # older weights or runtimes: never read again
        if stale != current:
            stale.unlink(missing_ok=True)
    model = Embedder(threads=2, cache_dir=cache)
    model.start()
    model.wait(timeout=120)
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def vector_index(settings: Settings, *, cache_mb: int | None = None) -> VectorIndex:
    """The Chroma adapter as the server opens it from `settings` (`cache_mb` overrides the copies' budget)."""
    return VectorIndex(settings.chroma_path, url=settings.chroma_url,
                       cache_mb=settings.vector_cache_mb if cache_mb is None else cache_mb)


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
        idx = build_indexer(settings, store, model or embedder)
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
def memories(store: Store, indexer: Indexer) -> Memories:
    return Memories(store, indexer)


# --- end memory / indexing ------------------------------------------------------------------------------

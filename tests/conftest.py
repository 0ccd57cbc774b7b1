"""Shared fixtures: real SQLite, real files and the real MCP server in temp directories.

Async tests run on anyio's asyncio backend: test modules set `pytestmark = pytest.mark.anyio`.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click.testing
import platformdirs
import pytest
from filelock import FileLock

if TYPE_CHECKING:  # the xdist controller imports this file too and runs no test: it never loads these
    from mcp import Client, StdioServerParameters
    from mcp.client.session import ClientSession

    from context_server.adapters.embedder import Embedder
    from context_server.adapters.index import VectorIndex
    from context_server.adapters.store import Store
    from context_server.app import App
    from context_server.domain.memory.service import Memories
    from context_server.domain.search.indexing import Indexer
    from context_server.settings import Settings

#: Where the tests' temporary directories go when the user has not chosen (TMPDIR, `--basetemp`): a RAM-backed
#: file system when the machine has a roomy one (Linux's /dev/shm). The data directories are real (SQLite,
#: Chroma, image files), but the server commits with `synchronous = FULL`, and on a disk each commit waits for
#: its fsync: on 2 cores the suite's CPUs stood idle ~12% of the run (measured with vmstat; docs/benchmarks.md,
#: "The test suite"). A killed process loses nothing on either (what fsync adds is safety from power loss,
#: which no test plays). A run takes ~260 MB while it runs; the directories of tests that passed are removed
#: at the end (pyproject: tmp_path_retention_policy).
RAM_TMP = Path("/dev/shm")
RAM_TMP_MIN_FREE = 2 * 1024**3
#: The temporary directory on disk, for what is too big for RAM (the pipx installation test's ~2 GB).
DISK_TMP = Path(tempfile.gettempdir())


def _use_ram_for_temporary_files() -> None:
    if "TMPDIR" in os.environ or not RAM_TMP.is_dir() or not os.access(RAM_TMP, os.W_OK):
        return
    if shutil.disk_usage(RAM_TMP).free >= RAM_TMP_MIN_FREE:
        tempfile.tempdir = str(RAM_TMP)  # pytest's base temporary directory follows (tempfile.gettempdir)


_use_ram_for_temporary_files()

_compiled_output_schemas: dict[str, Any] = {}


@pytest.fixture(scope="session", autouse=True)
def _shared_output_schemas() -> None:
    """The SDK client checks each tool's output schema against the JSON Schema metaschema once per session
    before it validates results with it: 20-40 ms of CPU per tool and session, and the suite opens hundreds
    of sessions on the same schemas. Here a schema that one session compiled is reused by the next, keyed
    on its exact JSON; every result is still validated against it, and a schema the check refuses is
    refused again each time (nothing is kept)."""
    from mcp.client.session import ClientSession

    compile_schema = getattr(ClientSession, "_output_schema_validator", None)
    if compile_schema is None or getattr(compile_schema, "shared", False):
        return  # an SDK without it validates as it sees fit

    def shared(self: ClientSession, name: str, output_schema: dict[str, Any]) -> Any:
        key = json.dumps(output_schema, sort_keys=True)
        validator = _compiled_output_schemas.get(key)
        if validator is None:
            validator = _compiled_output_schemas[key] = compile_schema(self, name, output_schema)
        self._tool_output_validators[name] = validator
        return validator

    shared.shared = True  # type: ignore[attr-defined]
    ClientSession._output_schema_validator = shared  # type: ignore[method-assign]


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
    from context_server.settings import Settings

    def make(**env: str) -> Settings:
        return Settings.from_env({"CONTEXT_SERVER_HOME": str(home), **env})

    return make


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database with every migration applied, made once per worker by `Store.migrate`."""
    from context_server.adapters.store import Store

    path = tmp_path_factory.mktemp("migrated") / "context.db"
    made = Store(path)
    made.migrate()
    made.close()  # the last connection checkpoints the WAL into the file
    return path


def start_migrated(db_path: Path, migrated: Path) -> None:
    """Put a copy of `migrated_database` at `db_path`: the `app` and `store` fixtures start from a migrated
    empty database instead of applying every migration again (~35 ms of CPU each, hundreds of times a run).
    Their `migrate()` still runs and finds nothing pending. Tests of a first start or of migrations make
    their own directory (`home`, `tmp_path`)."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated, db_path)


@pytest.fixture
async def app(make_settings: Callable[..., Settings], embedder: Embedder, migrated_database: Path) -> AsyncIterator[App]:
    from context_server.app import App

    settings = make_settings()
    start_migrated(settings.db_path, migrated_database)
    application = App.create(settings, embedder=embedder)
    try:
        yield application
    finally:
        await application.aclose()


@pytest.fixture
async def two_users(app: App) -> AsyncIterator[tuple[Any, str, str]]:
    """Alice and Bob, each with a bearer token, on one HTTP server: (server, alice's token, bob's token)."""
    from .http_support import serve  # only the HTTP tests load uvicorn

    _, alice = app.users.add("alice")
    _, bob = app.users.add("bob")
    async with serve(app) as server:
        yield server, alice, bob


@pytest.fixture
async def client(app: App) -> AsyncIterator[Client]:
    from mcp import Client

    from context_server.server import build_server

    async with Client(build_server(app)) as c:
        yield c


WORKTREE = Path(__file__).resolve().parent.parent


def stdio_server(home: Path, **env: str) -> StdioServerParameters:
    """This checkout's server over stdio, the way Claude Desktop starts one."""
    from mcp import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable, args=["-m", "context_server.cli"], cwd=str(WORKTREE),
        env={**os.environ, "PYTHONPATH": str(WORKTREE), "CONTEXT_SERVER_HOME": str(home),
             "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **env})


@asynccontextmanager
async def served(settings: Settings, embedder: Embedder) -> AsyncIterator[Client]:
    """A whole server (App, MCP server, lifespan) in this process on the SDK's in-memory transport: what a
    stdio server runs, less the process start. A second `served` over the same data directory after the
    first has closed is a server restart; tests about the stdio transport or about processes use
    `stdio_server`."""
    from mcp import Client

    from context_server.app import App
    from context_server.server import build_server

    application = App.create(settings, embedder=embedder)
    try:
        async with Client(build_server(application)) as c:
            yield c
    finally:
        await application.aclose()


def spawn_cli(home: Path, *args: str, stdin: str | None = None, timeout: float = 300,
              **env: str) -> subprocess.CompletedProcess[str]:
    """`context-server ARGS` as the installed command in a new process (`python -m context_server.cli`)."""
    return subprocess.run([sys.executable, "-m", "context_server.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=WORKTREE, input=stdin,
                          env={**os.environ, "PYTHONPATH": str(WORKTREE), "CONTEXT_SERVER_HOME": str(home),
                               "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **env})


def run_cli(home: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`context-server ARGS` run in this process by click's CliRunner, answered like `spawn_cli`: exit code,
    stdout and stderr apart. The same verbs and the same code; what it skips is the process start (imports,
    loading the model: the session's `embedder` is shared), about 3 s of CPU per call. An exception no verb
    handles ends it with exit code 1 and the traceback on stderr, as the process would. Tests about the
    process itself (exit codes through `sys.exit`, what reaches a real stdout, first-run logs) use
    `spawn_cli`."""
    from context_server.cli import main

    runner = click.testing.CliRunner()
    done = runner.invoke(main, list(args), input=stdin, prog_name="context-server",
                         env={"CONTEXT_SERVER_HOME": str(home), "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **env})
    stderr = done.stderr
    if done.exc_info is not None and not isinstance(done.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*done.exc_info))
    return subprocess.CompletedProcess(["context-server", *args], done.exit_code, done.stdout, stderr)


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

#: The package's bytecode, written once before any test runs: the servers and commands the tests spawn read
#: it instead of compiling every module again each time when PYTHONDONTWRITEBYTECODE is set (as in CI
#: containers), about 1 s of CPU per process. Python checks each file against its source, as always.
compileall.compile_dir(str(WORKTREE / "context_server"), quiet=1)
#: Likewise pytest's assertion-rewritten test modules: with PYTHONDONTWRITEBYTECODE each worker rewrote every
#: test module on every run (~2 s of CPU a worker); kept in tests/__pycache__ (ignored by git), as without it.
sys.dont_write_bytecode = False


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The production set-up: the packaged weights exported to ONNX in a cache directory (once per machine,
    see `tests_model_cache`); servers the tests spawn share it through `CONTEXT_SERVER_MODEL_CACHE`."""
    from context_server.adapters.embedder import Embedder, default_model_path
    from context_server.adapters.onnx_encoder import onnx_path_for

    cache = tests_model_cache()
    cache.mkdir(parents=True, exist_ok=True)
    current = onnx_path_for(cache, default_model_path(), Embedder.model_name)
    # One export per machine: the suite's xdist workers (and other checkouts' runs) load the model at the same
    # time; the first exports, the others wait for its file instead of exporting it again on the same cores.
    with FileLock(str(cache / ".export.lock"), timeout=600):
        for stale in cache.glob(f"{Embedder.model_name}-*.onnx"):  # older weights or runtimes: never read again
            if stale != current:
                stale.unlink(missing_ok=True)
        # Under xdist each worker has its own model and a CPU of its own: one thread each, not two per core.
        model = Embedder(threads=1 if os.environ.get("PYTEST_XDIST_WORKER") else 2, cache_dir=cache)
        model.start()
        model.wait(timeout=300)
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    from context_server.settings import Settings

    return Settings(home=tmp_path / "home")


def vector_index(settings: Settings, *, cache_mb: int | None = None) -> VectorIndex:
    """The Chroma adapter as the server opens it from `settings` (`cache_mb` overrides the copies' budget)."""
    from context_server.adapters.index import VectorIndex

    return VectorIndex(settings.chroma_path, url=settings.chroma_url,
                       cache_mb=settings.vector_cache_mb if cache_mb is None else cache_mb)


@pytest.fixture
def store(settings: Settings, migrated_database: Path) -> Iterator[Store]:
    from context_server.adapters.store import Store

    start_migrated(settings.db_path, migrated_database)
    db = Store(settings.db_path)
    db.migrate()
    yield db
    db.close()


@pytest.fixture
def make_indexer(settings: Settings, store: Store, embedder: Embedder) -> Iterator[Callable[..., Indexer]]:
    """Build Indexers as the server does (lock file in the data directory); `take_index()` is up to the
    test. A second one over the same directory plays a second server process."""
    from context_server.app import build_indexer

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
    from context_server.domain.memory.service import Memories

    return Memories(store, indexer)


# --- end memory / indexing ------------------------------------------------------------------------------

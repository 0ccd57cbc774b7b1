"""`CHROMA_URL`: the index on a real Chroma server (`chroma run`, shipped with the chromadb package), as a
team deployment runs it. SQLite stays the truth: what the server holds is rebuilt from it when it is lost,
and searches fall back to full text while it cannot be reached."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from context_server.adapters.embedder import Embedder
from context_server.adapters.store import Store
from context_server.app import App
from context_server.domain.memory.service import Memories
from context_server.domain.search.indexing import Indexer
from context_server.server import build_server
from context_server.settings import Settings

from .conftest import call

SMALL = {"width": 256, "height": 256}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChromaServer:
    """One `chroma run` process on a free port; `restart(wipe=True)` plays a server that lost its data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        exe = Path(sys.executable).with_name("chroma")
        self.exe = str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "run", "--path", str(self.root / "data"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "chroma run exited"
            time.sleep(0.1)
        raise AssertionError("chroma run did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self, *, wipe: bool = False) -> None:
        self.stop()
        if wipe:
            shutil.rmtree(self.root / "data", ignore_errors=True)
        self.start()

    def collections(self) -> dict[str, int]:
        import chromadb

        client = chromadb.HttpClient(host="127.0.0.1", port=self.port)
        return {c.name: client.get_collection(c.name).count() for c in client.list_collections()}


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One `chroma run` for the module (each start is ~2 s of CPU). The tests still begin on an empty
    server, as a new team's would: a data directory's first start rebuilds the index, and the rebuild drops
    every collection context-server made there (`VectorIndex.reset`)."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def chroma(chroma_server: ChromaServer) -> ChromaServer:
    """The module's Chroma server, running (a test that stopped it, or failed while it was down, left it
    stopped)."""
    if chroma_server.proc is None or chroma_server.proc.poll() is not None:
        chroma_server.stop()
        chroma_server.start()
    return chroma_server


@pytest.fixture
def settings(tmp_path: Path, chroma: ChromaServer) -> Settings:
    """conftest's `store` and `make_indexer` on this Chroma server: each `make_indexer()` is another server
    process's Indexer over the same data directory."""
    return Settings(home=tmp_path / "home", chroma_url=chroma.url)


@pytest.fixture
def team(store: Store, make_indexer: Callable[..., Indexer]) -> Callable[[], tuple[Indexer, Memories]]:
    def process() -> tuple[Indexer, Memories]:
        indexer = make_indexer()
        return indexer, Memories(store, indexer)

    return process


def ids(found: list[Any]) -> list[str]:
    return [m.memory_id for m in found]


def test_memories_live_on_the_chroma_server_one_collection_per_user(team: Any, chroma: ChromaServer,
                                                                    tmp_path: Path) -> None:
    indexer, memories = team()
    assert indexer.take_index() and indexer.uses_vectors
    logo = memories.save("ann", "flat vector logos with two colours", kind="style")
    forest = memories.save("ann", "misty pine forests at dawn", kind="style")
    secret = memories.save("bob", "misty pine forests at dawn, but bob's", kind="style")
    indexer.drain()  # saving indexes at once; this catches anything left in the outbox

    found = memories.search("ann", "foggy woodland landscape", limit=2)
    assert ids(found) == [forest.memory_id, logo.memory_id]
    assert found[0].score is not None and found[0].score > found[1].score  # ranked by meaning, not words
    assert secret.memory_id not in ids(memories.search("ann", "misty pine forests", limit=10))
    assert ids(memories.search("bob", "misty pine forests", limit=10)) == [secret.memory_id]

    held = chroma.collections()
    assert sum(1 for name in held if name.endswith("memories")) == 2  # ann's and bob's, apart
    assert sum(held.values()) >= 3
    assert not (tmp_path / "home" / "chroma").exists()  # nothing embedded beside it
    assert indexer._index is not None and indexer._index.cache is None  # another process may write there


def test_two_server_processes_share_the_chroma_server(team: Any) -> None:
    first, first_memories = team()
    second, second_memories = team()
    assert first.take_index() and second.take_index()  # no file lock: the Chroma server arbitrates
    saved = first_memories.save("cy", "risograph prints in pink and teal", kind="style")
    first.drain()
    found = second_memories.search("cy", "two-colour print", limit=3)
    assert ids(found) == [saved.memory_id]
    second_memories.delete("cy", saved.memory_id)
    second.drain()
    assert first_memories.search("cy", "two-colour print", limit=3) == []


def test_a_chroma_server_that_lost_its_data_is_refilled_from_sqlite(team: Any, chroma: ChromaServer) -> None:
    indexer, memories = team()
    assert indexer.take_index()
    kept = [memories.save("di", text, kind="style").memory_id
            for text in ("charcoal sketches", "neon cyberpunk streets", "pressed flower collages")]
    indexer.drain()
    indexer.close()

    chroma.restart(wipe=True)  # the team's Chroma was replaced by an empty one
    assert chroma.collections() == {}
    again, again_memories = team()  # the next server start notices, and rebuilds from SQLite
    assert again.take_index() and again.uses_vectors
    assert ids(again_memories.search("di", "glowing city at night", limit=1)) == [kept[1]]
    assert sum(chroma.collections().values()) >= 3


def test_while_the_chroma_server_is_down_searches_use_full_text(team: Any, chroma: ChromaServer) -> None:
    chroma.stop()
    indexer, memories = team()
    indexer.take_index()
    assert not indexer.uses_vectors
    saved = memories.save("ed", "muted watercolour with lots of paper showing", kind="style")  # SQLite + outbox
    assert ids(memories.search("ed", "watercolour", limit=3)) == [saved.memory_id]  # by its words

    chroma.start()
    indexer.maintain()  # the periodic pass: repairs, drains the outbox
    assert indexer.uses_vectors
    assert ids(memories.search("ed", "soft painted look", limit=3)) == [saved.memory_id]  # by meaning again


@pytest.mark.anyio
async def test_generate_and_find_images_through_the_tools_on_a_chroma_server(
    make_settings: Callable[..., Settings], chroma: ChromaServer, embedder: Embedder
) -> None:
    app = App.create(make_settings(CHROMA_URL=chroma.url), embedder=embedder)
    try:
        async with Client(build_server(app)) as client:
            await call(client, "save_memory", content="everything in muted watercolour", kind="style", pinned=True)
            ship = await call(client, "generate_image", prompt="a red spaceship landing on mars", **SMALL)
            await call(client, "generate_image", prompt="a bowl of ramen", **SMALL)
            hits = (await call(client, "search_images", query="rocket on another planet", limit=1))["images"]
            assert [h["image_id"] for h in hits] == [ship["image_id"]]
            again = await call(client, "generate_image", prompt="the same scene at night",
                               reference="my last spaceship image", **SMALL)
            assert again["applied"]["reference"]["image_id"] == ship["image_id"]
            assert "muted watercolour" in again["final_prompt"]
        assert any(name.endswith("images") and n >= 2 for name, n in chroma.collections().items())
    finally:
        await app.aclose()

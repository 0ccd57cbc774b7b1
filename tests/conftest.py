"""Shared fixtures. Sections are owned by the feature that needs them; keep each small."""

from __future__ import annotations

# --- memory / indexing (embedder loaded once per session; SQLite and Chroma per test) -------------------
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from context_server.adapters.embedder import Embedder
from context_server.adapters.store import Store
from context_server.domain.indexing import Indexer
from context_server.domain.memory import MemoryService
from context_server.settings import Settings


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder(threads=2)
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

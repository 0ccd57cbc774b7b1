"""The state one `Indexer` shares between its jobs, and what SQLite records about the index (`index_meta`).

`Indexer` (`indexing.py`) is assembled from one class per job, each in its own module: the outbox
(`outbox.py`), the index's lifecycle (`lifecycle.py`), the in-process vector copies (`copies.py`), search
routing (`routing.py`) and the report for `doctor` (`report.py`). They share the fields set here; each
module says which of them it changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Self

from context_server.adapters.embedder import Embedder
from context_server.adapters.index import COLLECTIONS, IndexLock, VectorIndex
from context_server.adapters.store import Store
from context_server.domain.search.stored import StoredVectors

__all__ = ["INDEX_LAYOUT", "SOURCE_COLLECTIONS", "SUBSETS", "IndexState"]

#: Collections that hold a subset of another's items, to be searched without a metadata filter:
#: {subset: (source collection, the `meta` value its items have)}. See `outbox.py`.
SUBSETS = {"styles": ("memories", "style")}
#: The collections writes name (enqueue, index_embedded, search); the subsets follow their source.
SOURCE_COLLECTIONS = tuple(kind for kind in COLLECTIONS if kind not in SUBSETS)
#: What is in the index besides the vectors' model: bump when the collections change, to rebuild once.
INDEX_LAYOUT = "2"


class IndexState:
    """The store, the embedder, the index when this process holds it, and the flags its jobs share."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index_factory: Callable[[], VectorIndex],
        lock: IndexLock | None = None,
    ) -> None:
        """`lock` guards a Chroma directory; None for a Chroma server (`CHROMA_URL`), which needs none."""
        self.store = store
        self.embedder = embedder
        self.stored = StoredVectors(store, embedder)
        self._factory = index_factory
        self._lock = lock
        self._index: VectorIndex | None = None
        self._work = threading.RLock()  # serialises drain / rebuild / repair
        self._copy_early: list[tuple[str, str]] = []
        self._tried = False  # whether take_index has finished once (the first search waits for it)
        self._damaged = False
        self._rebuilding = False
        # Set by close(). A server stopped during its warm-up exits while a worker thread is still opening
        # or rebuilding the index; Chroma then fails in odd ways (its lazy imports cannot start threads at
        # interpreter shutdown), and those failures must not be taken for a damaged index (moved aside).
        self._stopping = False
        #: The background drainer (`Outbox.start_draining`): a write sets the event instead of draining itself.
        self._drain_wanted = threading.Event()
        self._drainer: threading.Thread | None = None

    @classmethod
    def for_directory(cls, store: Store, embedder: Embedder, chroma_path: Path, *, chroma_url: str | None,
                      cache_mb: int) -> Self:
        """The server's wiring: Chroma in `chroma_path` behind the lock file `<chroma_path>.lock` beside it,
        or the Chroma server at `chroma_url` (no lock: the server arbitrates)."""
        lock = None if chroma_url else IndexLock(chroma_path.with_name(chroma_path.name + ".lock"))
        return cls(store, embedder, lambda: VectorIndex(chroma_path, url=chroma_url, cache_mb=cache_mb), lock)

    @property
    def holds_index(self) -> bool:
        return self._index is not None

    @property
    def uses_vectors(self) -> bool:
        """Whether searches go to Chroma right now (else to the stored vectors, see `search`)."""
        working = not (self._damaged or self._rebuilding or self.embedder.failed)
        return self._index is not None and working

    # -- index_meta -----------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.store.one("SELECT value FROM index_meta WHERE key = ?", (key,))
        return None if row is None else row["value"]

    def _set_meta(self, values: Mapping[str, str | None]) -> None:
        with self.store.write() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM index_meta WHERE key = ?", [key])
                else:
                    db.table("index_meta").upsert({"key": key, "value": value}, pk="key")

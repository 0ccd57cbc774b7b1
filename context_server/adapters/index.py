"""The Chroma vector index (derived data: SQLite is the source of truth) and the lock on its directory.

One collection per (user, kind): a `where` filter on one shared collection was measured 37x slower at 100k
items. The `COLLECTIONS` are `memories`, `images` and `styles`; `styles` holds a copy of the user's long-term style
memories (the domain keeps it in step, see `domain/search/outbox.py`) because choosing styles is on every
generation's path and even a per-user collection's `where={"kind": "style"}` costs 30-40 ms at 2,500
memories a user. Collection names are `u<sha256(user)[:32]>-<kind>`, which always meets Chroma's naming rules
whatever the user id is. We pass our own vectors and create collections with `embedding_function=None`,
so Chroma never loads (or downloads) its default ONNX embedder.

Scores: collections use cosine space; Chroma returns the cosine *distance* d = 1 - cos(a, b). A `Hit`'s
`score` is the cosine similarity 1 - d, clipped to [0, 1] (negative similarity means unrelated). For
all-MiniLM-L6-v2, paraphrases score about 0.85-1.0 and unrelated text about 0.0-0.2.

Plain queries are answered from exact in-process copies of the collections in use when they fit
(`vector_cache.py`): Chroma's ~2 ms fixed cost a query was a quarter of a generation's enrichment.

Two processes opening one Chroma directory corrupt it silently, so only the process holding `IndexLock`
(an OS file lock on `<home>/chroma.lock`, through `filelock`) may open the `PersistentClient`; the others retry later with
`try_acquire()`. Any Chroma failure is raised as `IndexDamaged`, so the caller can rebuild.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from context_server.adapters.vector_cache import VectorCache

__all__ = ["COLLECTIONS", "META_COLLECTION", "Hit", "IndexDamaged", "IndexLock", "VectorIndex", "collection_name"]

log = logging.getLogger(__name__)

COLLECTIONS = ("memories", "images", "styles")
_SUFFIXES = tuple(f"-{kind}" for kind in COLLECTIONS)
#: A small collection holding the index's identity (see `domain/search/lifecycle.py`); not per user.
META_COLLECTION = "context-server-meta"

Metadata = Mapping[str, str | int | float | bool]


class IndexDamaged(Exception):
    """Chroma failed to open or answer: the index should be discarded and rebuilt from SQLite."""


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity, clipped to [0, 1]


def _similarity(distance: float) -> float:
    return max(0.0, min(1.0, 1.0 - float(distance)))


@functools.cache
def _chroma_settings() -> Any:
    """Chroma's settings for every client this process opens: building them reads the environment and a
    `.env` file through pydantic-settings, ~8 ms of CPU; a copy of these is free."""
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=True)


def collection_name(user_id: str, kind: str) -> str:
    if kind not in COLLECTIONS:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {COLLECTIONS}")
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]
    return f"u{digest}-{kind}"


class IndexLock:
    """Who may open the Chroma directory: a non-blocking OS file lock held for the life of the process.

    `filelock` takes `flock` on POSIX and `LockFileEx` on Windows. Both belong to the open file, so a second
    `IndexLock` on the same path fails even within one process, and the OS drops the lock when the holder
    dies (no stale lock files to clean up).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # thread_local=False: the server takes the lock in one thread and may release it from another.
        self._lock = FileLock(str(path), timeout=0, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks. True when this object holds it (now or already)."""
        if self._lock.is_locked:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)


class VectorIndex:
    """Chroma behind the few operations the domain needs. Every Chroma error becomes `IndexDamaged`.

    A `HttpClient` to the Chroma server at `url` when one is given, else a `PersistentClient` at `path`,
    opened on first use (the caller must hold the `IndexLock` by then) and again after `discard()`.
    `cache_mb` is the budget of the in-process copies (`adapters/vector_cache.py`; 0: none).
    """

    def __init__(self, path: Path, *, url: str | None, cache_mb: int) -> None:
        self.url = url
        self.path = None if url else path
        self._client_: Any = None
        self._collections: dict[str, Any] = {}
        # Not with a Chroma server: other processes may write it, and the copies would go stale.
        self.cache = VectorCache(cache_mb * 1024 * 1024) if self.path is not None and cache_mb > 0 else None

    @property
    def _client(self) -> Any:
        if self._client_ is None:
            self._client_ = self._open()
        return self._client_

    def _open(self) -> Any:
        import chromadb

        chroma_settings = _chroma_settings().model_copy()  # Chroma writes the path and mode into its copy
        try:
            if self.path is None:
                from urllib.parse import urlsplit

                url = urlsplit(self.url or "")
                return chromadb.HttpClient(
                    host=url.hostname or "localhost",
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    settings=chroma_settings,
                )
            self.path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
            client.list_collections()
            return client
        except Exception as exc:
            if self.path is not None:
                _forget_system(str(self.path))
            raise IndexDamaged(f"cannot open the vector index: {exc}") from exc

    def _collection(self, user_id: str, kind: str) -> Any:
        name = collection_name(user_id, kind)
        collection = self._collections.get(name)
        if collection is None:
            with _translated("open collection"):
                collection = self._client.get_or_create_collection(
                    name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
                )
            self._collections[name] = collection
        return collection

    def upsert(
        self,
        user_id: str,
        kind: str,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        documents: Sequence[str],
        metadatas: Sequence[Metadata] | None = None,
    ) -> None:
        if not ids:
            return
        collection = self._collection(user_id, kind)
        with self._keeping_in_step(user_id, kind), _translated("upsert"):
            collection.upsert(
                ids=list(ids),
                embeddings=[list(v) for v in vectors],
                documents=list(documents),
                metadatas=[dict(m) for m in metadatas] if metadatas else None,
            )
        if self.cache is not None:
            self.cache.upserted(collection_name(user_id, kind), ids, vectors)

    def delete(self, user_id: str, kind: str, ids: Sequence[str]) -> None:
        """Delete those of `ids` the collection holds. It asks first: a Chroma `delete` cost 14 ms of CPU even
        for an id it does not hold (every save of a note deletes it from the styles subset), a `get` by id
        under 1 ms."""
        if not ids:
            return
        collection = self._collection(user_id, kind)
        with _translated("get"):
            asked = set(collection.get(ids=list(ids), include=[])["ids"])
        held = [item_id for item_id in ids if item_id in asked]
        if not held:
            return
        with self._keeping_in_step(user_id, kind), _translated("delete"):
            collection.delete(ids=held)
        if self.cache is not None:
            self.cache.deleted(collection_name(user_id, kind), held)

    @contextmanager
    def _keeping_in_step(self, user_id: str, kind: str) -> Iterator[None]:
        """A write that fails half-way leaves Chroma in an unknown state: drop the copy rather than guess."""
        try:
            yield
        except BaseException:
            if self.cache is not None:
                self.cache.forget([collection_name(user_id, kind)])
            raise

    def query(
        self,
        user_id: str,
        kind: str,
        vector: Sequence[float],
        limit: int,
        *,
        where: Metadata | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The `limit` nearest items, best first; `where` filters on metadata, `ids` limits the candidates."""
        if limit <= 0 or (ids is not None and not ids):
            return []
        if self.cache is not None and not where:
            cached = self.cache.query(collection_name(user_id, kind), vector, limit, ids)
            if cached is not None:
                return [Hit(item_id, _similarity(1.0 - score)) for item_id, score in cached]
        collection = self._collection(user_id, kind)
        with _translated("query"):
            # No count() first: Chroma returns fewer than n_results when the collection holds fewer (or
            # none), and the extra round trip cost ~1 ms a query at 100k items.
            result = collection.query(
                query_embeddings=[list(vector)],
                n_results=limit,
                where=dict(where) if where else None,
                ids=list(ids) if ids is not None else None,
                include=["distances"],
            )
        found_ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result.get("distances") else []
        return [Hit(item_id, _similarity(d)) for item_id, d in zip(found_ids, distances, strict=True)]

    def vectors(self, user_id: str, kind: str, *, page: int = 1000) -> dict[str, list[float]]:
        """Every stored vector of one (user, kind), by id: a bulk import compares against these instead of
        embedding the user's memories again."""
        ids, embeddings = self._read_all(self._collection(user_id, kind), page)
        return {item_id: [float(x) for x in vector] for item_id, vector in zip(ids, embeddings, strict=True)}

    def _read_all(self, collection: Any, page: int = 1000) -> tuple[list[str], list[Any]]:
        ids: list[str] = []
        embeddings: list[Any] = []
        with _translated("read vectors"):
            offset = 0
            while True:
                got = collection.get(include=["embeddings"], limit=page, offset=offset)
                got_ids = got["ids"] or []
                ids.extend(got_ids)
                embeddings.extend(got["embeddings"] if got.get("embeddings") is not None else [])
                if len(got_ids) < page:
                    return ids, embeddings
                offset += page

    def want(self, user_id: str, kind: str) -> None:
        """Ask for this collection's copy at the next `load_wanted`, before any query has."""
        if self.cache is not None:
            self._collection(user_id, kind)
            self.cache.want(collection_name(user_id, kind))

    def load_wanted(self, max_collections: int = 8) -> int:
        """Copy into memory the collections that queries found uncached (at most `max_collections` a call, so
        one maintenance pass stays short; ~0.1-0.3 s each at 1-2.5k items). Returns how many were loaded."""
        if self.cache is None:
            return 0
        loaded = 0
        for name in self.cache.wanted()[:max_collections]:
            collection = self._collections.get(name)
            if collection is None:
                self.cache.forget([name])
                continue
            epoch = self.cache.epoch(name)
            ids, embeddings = self._read_all(collection)
            loaded += self.cache.install(name, epoch, ids, embeddings)
        return loaded

    def count(self, user_id: str, kind: str) -> int:
        collection = self._collection(user_id, kind)
        with _translated("count"):
            return int(collection.count())

    def get_meta(self) -> dict[str, Any] | None:
        """The identity collection's metadata, or None when this index has none (new or foreign)."""
        with _translated("read metadata"):
            names = {c.name for c in self._client.list_collections()}
            if META_COLLECTION not in names:
                return None
            metadata = self._client.get_collection(META_COLLECTION, embedding_function=None).metadata
            return dict(metadata or {})

    def set_meta(self, metadata: Metadata) -> None:
        with _translated("write metadata"):
            names = {c.name for c in self._client.list_collections()}
            if META_COLLECTION in names:
                self._client.delete_collection(META_COLLECTION)
            self._client.create_collection(META_COLLECTION, metadata=dict(metadata), embedding_function=None)

    def probe(self, dimension: int, *, max_collections: int = 500) -> None:
        """Read one neighbour from each of our collections: a broken HNSW file only shows when queried."""
        unit = [1.0] + [0.0] * (dimension - 1)
        with _translated("probe"):
            for listed in self._client.list_collections()[:max_collections]:
                if not listed.name.endswith(_SUFFIXES):
                    continue
                collection = self._client.get_collection(listed.name, embedding_function=None)
                if collection.count():
                    collection.query(query_embeddings=[unit], n_results=1, include=["distances"])

    def reset(self, user_id: str | None = None) -> None:
        """Drop one user's collections, or every collection this server made (and the identity)."""
        with _translated("reset"):
            if user_id is not None:
                wanted = {collection_name(user_id, kind) for kind in COLLECTIONS}
            else:
                wanted = {
                    c.name
                    for c in self._client.list_collections()
                    if c.name == META_COLLECTION or (c.name.startswith("u") and c.name.endswith(_SUFFIXES))
                }
            existing = {c.name for c in self._client.list_collections()}
            if self.cache is not None:
                self.cache.forget(None if user_id is None else sorted(wanted))
            for name in wanted & existing:
                self._client.delete_collection(name)
            for name in wanted:
                self._collections.pop(name, None)

    def discard(self) -> None:
        """Throw a damaged index away: drop our collections on a server, or move the directory aside.

        The old directory is renamed to `chroma.damaged` (replacing an older one) rather than deleted, so
        a bad repair can still be investigated; it is never read again. The next call opens a fresh index.
        """
        if self.path is None:
            self._collections.clear()
            try:
                self.reset()
            except IndexDamaged:
                log.warning("could not reset the collections on the Chroma server", exc_info=True)
            return
        self.close()
        if self.path.exists():
            aside = self.path.with_name(self.path.name + ".damaged")
            if aside.exists():
                shutil.rmtree(aside, ignore_errors=True)
            self.path.rename(aside)
            log.warning("moved the damaged vector index to %s", aside)

    def close(self) -> None:
        """Release the client; the next call opens it again."""
        self._collections.clear()
        if self.cache is not None:
            self.cache.forget()
        client, self._client_ = self._client_, None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.debug("closing the Chroma client failed", exc_info=True)


def _forget_system(identifier: str) -> None:
    """Chroma caches one System per directory, process-wide, and keeps it even when starting it failed;
    drop that broken one so the next open (after `discard`) starts afresh. Private Chroma API, 1.5.x."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(identifier, None)
    SharedSystemClient._identifier_to_refcount.pop(identifier, None)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn any Chroma failure (including Rust panics, which are BaseException) into `IndexDamaged`."""
    try:
        yield
    except (IndexDamaged, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise IndexDamaged(f"vector index {action} failed: {exc}") from exc

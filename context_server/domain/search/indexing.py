"""Keeping the Chroma index in step with SQLite, and searching it (or the vectors stored in SQLite when we
cannot: `domain/search/stored.py`, the same ranking).

SQLite is the truth; the index is derived. A write records an outbox row in the same transaction as the
data (`enqueue`), so a crash can never leave a committed row that the index will not hear about. `drain`
then brings each outboxed item to its *current* state in SQLite (upsert with our row id, or delete when
the row is gone or no longer indexable) and deletes the outbox rows only after Chroma accepted the change:
crashing anywhere and draining again is harmless, because upserts with fixed ids are idempotent.

What gets indexed: memories with scope `long_term`, and images with `incognito = 0`. The long-term style
memories are also kept in a `styles` collection of their own (`SUBSETS`): picking styles for a prompt is on
every generation's path, and Chroma's metadata filter on the memories collection cost 30-40 ms at 2,500
memories a user where the styles collection answers in ~3 ms. Writes only ever name `memories`; applying
them keeps the subset in step, with the vectors embedded once. `INDEX_LAYOUT` is recorded with the model:
a data directory indexed under an older layout is rebuilt once at start-up.

Start-up, in a worker thread (`anyio.to_thread.run_sync`), after the store is migrated and the embedder
started; the server answers the client meanwhile:

1. `take_index()` - takes the directory lock if free; when taken it runs, in order,
   `check_model()` (rebuild if the recorded model/dimension differ), `repair_if_damaged()` (rebuild if a
   rebuild was interrupted, Chroma fails to open/answer, or the index is not the one recorded in SQLite,
   e.g. the directory was deleted) and `drain()`. Returns False when another process holds the lock:
   this process still writes SQLite and the outbox, and ranks with the stored vectors, which give the
   holder's answers (only without a working embedding model does a search fall back to FTS5 keywords).
2. Every few seconds: `maintain()` - retries the lock when not held, repairs after a runtime failure,
   and drains what other processes (or failed best-effort drains) left in the outbox.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from context_server.adapters.embedder import Embedder, EmbedderUnavailable
from context_server.adapters.index import KINDS, IndexDamaged, IndexLock, VectorIndex
from context_server.adapters.store import Store, now_iso
from context_server.domain.search.fulltext import SOURCES, fulltext_search
from context_server.domain.search.stored import StoredVectors

__all__ = ["Indexer", "Progress"]

log = logging.getLogger(__name__)

#: progress(done, total) during a rebuild.
Progress = Callable[[int, int], None]
OPS = ("upsert", "delete")
_PAGE = 256
#: Collections that hold a subset of another's items, to be searched without a metadata filter:
#: {subset: (source collection, the `meta` value its items have)}. See the module docstring.
SUBSETS = {"styles": ("memories", "style")}
#: The collections writes name (enqueue, index_embedded, search); the subsets follow their source.
SOURCE_KINDS = tuple(kind for kind in KINDS if kind not in SUBSETS)
#: What is in the index besides the vectors' model: bump when the collections change, to rebuild once.
INDEX_LAYOUT = "2"
#: How long the first search waits for a rebuild that the warm-up is running before it ranks with the stored
#: vectors (the same answers, embedding what the rebuild has not stored yet).
REBUILD_PATIENCE_SECONDS = 2.0


class _Stopped(Exception):
    """The indexer is closing: the work in progress gives up where it stands. Nothing is lost: the outbox keeps
    what was not applied, and an interrupted rebuild is finished by the next start (`rebuild_pending`)."""


class Indexer:
    """Outbox, drain, rebuild and search over a `Store`, an `Embedder` and (when ours) a `VectorIndex`."""

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

    @classmethod
    def for_directory(cls, store: Store, embedder: Embedder, chroma_path: Path, *, chroma_url: str | None,
                      cache_mb: int) -> Indexer:
        """The server's wiring: Chroma in `chroma_path` behind the lock file `<chroma_path>.lock` beside it,
        or the Chroma server at `chroma_url` (no lock: the server arbitrates)."""
        lock = None if chroma_url else IndexLock(chroma_path.with_name(chroma_path.name + ".lock"))
        return cls(store, embedder, lambda: VectorIndex(chroma_path, url=chroma_url, cache_mb=cache_mb), lock)

    # -- state ----------------------------------------------------------------------------------------

    @property
    def holds_index(self) -> bool:
        return self._index is not None

    @property
    def uses_vectors(self) -> bool:
        """Whether searches go to Chroma right now (else to the stored vectors, see `search`)."""
        working = not (self._damaged or self._rebuilding or self.embedder.failed)
        return self._index is not None and working

    def status(self) -> dict[str, Any]:
        """For `doctor`: who holds the index, what is pending, what was recorded."""
        pending = self.store.one("SELECT count(*) AS n FROM outbox")
        return {
            "holds_index": self.holds_index,
            "uses_vectors": self.uses_vectors,
            "damaged": self._damaged,
            "outbox_pending": pending["n"] if pending else 0,
            "recorded_model": self._meta("embed_model"),
            "recorded_dimension": self._meta("embed_dimension"),
        }

    def health(self) -> dict[str, Any]:
        """For `doctor`, repairing nothing: `state` is "in_use" (another process holds the lock: fine),
        "not_built", "ok", or a problem ("damaged", "interrupted", "mismatch", "model_changed"), with
        `detail`. Never takes the index from its holder; a lock taken here is released before returning."""
        status = self.status()
        if self._meta("index_id") is None:
            return {**status, "state": "not_built", "detail": "not built yet"}
        if self._meta("rebuild_pending"):
            return {**status, "state": "interrupted", "detail": "a rebuild was interrupted"}
        recorded = (self._meta("embed_model"), self._meta("embed_dimension"))
        if recorded != (self.embedder.model_name, str(self.embedder.dimension)):
            return {**status, "state": "model_changed",
                    "detail": f"built with {recorded[0]}, the model is now {self.embedder.model_name}"}
        if self._meta("layout") != INDEX_LAYOUT:
            return {**status, "state": "layout_changed",
                    "detail": "built by an older version of context-server; the next start rebuilds it"}
        index = self._index or self._factory()
        if index is not self._index and index.path is not None and not index.path.is_dir():
            # Opening (or locking) a missing directory would create it: say what is seen instead.
            return {**status, "state": "mismatch", "detail": "its folder was deleted or replaced since it was built"}
        mine = self._index is not None or self._lock is None or self._lock.held
        if not mine and self._lock is not None and not self._lock.try_acquire():
            return {**status, "state": "in_use", "detail": "in use by another process"}
        try:
            remote = index.get_meta()
            index.probe(self.embedder.dimension)
        except IndexDamaged as exc:
            return {**status, "state": "damaged", "detail": str(exc)}
        finally:
            if index is not self._index:
                index.close()
                if not mine and self._lock is not None:
                    self._lock.release()
        if remote is None or remote.get("index_id") != self._meta("index_id"):
            return {**status, "state": "mismatch",
                    "detail": "its folder was deleted or replaced since it was built"}
        return {**status, "state": "ok", "detail": "healthy"}

    # -- writes ---------------------------------------------------------------------------------------

    def enqueue(
        self, db: Database, user_id: str, collection: str, item_id: str, op: str, document: str = ""
    ) -> None:
        """Record that an item changed, inside the caller's `store.write()` transaction."""
        if collection not in SOURCE_KINDS or op not in OPS:
            raise ValueError(f"bad outbox entry: collection {collection!r} op {op!r}")
        if not db.conn.in_transaction:
            raise RuntimeError("Indexer.enqueue must be called inside store.write()")
        db.table("outbox").insert(
            {
                "user_id": user_id,
                "collection": collection,
                "item_id": item_id,
                "op": op,
                "document": document,
                "created_at": now_iso(),
            }
        )
        self.stored.forget(db, user_id, collection, item_id)

    def drain(self, batch: int = 64) -> int:
        """Apply the outbox to Chroma, oldest first; returns how many outbox rows were applied.

        Does nothing without the index (another process holds it) or without a working embedder. Waits for
        the embedder to finish loading. A Chroma failure stops the drain, keeps the rows and marks the index
        damaged for `maintain()` to repair.
        """
        if not self.uses_vectors:
            return 0
        index = self._index
        assert index is not None
        applied = 0
        with self._work:
            while True:
                rows = self.store.query("SELECT * FROM outbox ORDER BY id LIMIT ?", (batch,))
                if not rows or self._stopping:
                    return applied
                try:
                    embedded = self._apply(index, rows)
                except IndexDamaged:
                    if self._stopping:
                        return applied
                    self._damaged = True
                    log.warning("vector index failed while draining; will repair", exc_info=True)
                    return applied
                ids = [row["id"] for row in rows]
                with self.store.write() as db:
                    db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})", ids)
                    for collection, items in embedded.items():
                        self.stored.save(db, collection, items)
                applied += len(rows)

    def _drain_for(self, user_id: str, collection: str) -> None:
        """Drain first when this user's collection has changes waiting, so a search sees the user's own latest
        writes. Other users' waiting changes are not this search's to wait for: every search used to drain
        whenever anyone's were queued, and so queued behind each save's drain (issue 15). Theirs are drained
        by their own write, their next search, or `maintain()`."""
        if self.store.one("SELECT 1 AS x FROM outbox WHERE user_id = ? AND collection = ? LIMIT 1",
                          (user_id, collection)):
            self.drain()

    def _apply(self, index: VectorIndex, rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, Any]]]:
        """Bring the outboxed items to their current state in Chroma; returns what was embedded, by collection,
        as `(item_id, text, vector)` for `StoredVectors.save`."""
        embedded: dict[str, list[tuple[str, str, Any]]] = {}
        items = {(row["user_id"], row["collection"], row["item_id"]) for row in rows}
        by_target: dict[tuple[str, str], list[str]] = {}
        for user_id, collection, item_id in sorted(items):
            by_target.setdefault((user_id, collection), []).append(item_id)
        for (user_id, collection), item_ids in by_target.items():
            current = self._current(collection, user_id, item_ids)
            gone = [item_id for item_id in item_ids if item_id not in current]
            for target in (collection, *_subsets_of(collection)):
                index.delete(user_id, target, gone)
            vectors: dict[str, list[float]] = {}
            self._upsert_with_subsets(index, user_id, collection, list(current.values()), vectors)
            embedded.setdefault(collection, []).extend(
                (row["id"], row["text"], vectors[row["id"]]) for row in current.values())
        return embedded

    def _current(self, collection: str, user_id: str, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        src = SOURCES[collection]
        marks = ",".join("?" * len(item_ids))
        rows = self.store.query(
            f"SELECT id, {src['text']} AS text, {src['meta']} AS kind, created_at FROM {src['table']} "
            f"WHERE +user_id = ? AND id IN ({marks}) AND {src['indexable']}",
            [user_id, *item_ids],
        )
        return {row["id"]: row for row in rows}

    def _upsert_with_subsets(self, index: VectorIndex, user_id: str, collection: str,
                             rows: list[dict[str, Any]], vectors: dict[str, list[float]]) -> None:
        """Upsert indexable `rows` into `collection` and into each of its subsets the rows belong to (by
        their `kind`), removing them from the subsets they no longer belong to; each text embedded once."""
        self._upsert(index, user_id, collection, rows, vectors)
        for subset in _subsets_of(collection):
            meta = SUBSETS[subset][1]
            index.delete(user_id, subset, [row["id"] for row in rows if row["kind"] != meta])
            self._upsert(index, user_id, subset, [row for row in rows if row["kind"] == meta], vectors)

    def _upsert(self, index: VectorIndex, user_id: str, collection: str, rows: list[dict[str, Any]],
                vectors: dict[str, list[float]]) -> None:
        """Upsert `rows`, embedding only those whose vector is not in `vectors` yet (which it then holds):
        the caller passes the same dict for a collection and its subsets, so nothing is embedded twice."""
        if not rows:
            return
        missing = [row for row in rows if row["id"] not in vectors]
        if missing:
            embedded = self.embedder.embed([row["text"] for row in missing])
            vectors.update((row["id"], vector) for row, vector in zip(missing, embedded, strict=True))
        index.upsert(
            user_id,
            collection,
            [row["id"] for row in rows],
            [vectors[row["id"]] for row in rows],
            [row["text"] for row in rows],
            [{"kind": row["kind"], "created_at": row["created_at"]} for row in rows],
        )

    def stored_vectors(self, user_id: str, collection: str) -> dict[str, list[float]]:
        """The vectors the index holds for one user's collection, after draining (so none is stale); empty
        when this process searches without vectors. Items missing here must be embedded by the caller."""
        if not self.uses_vectors:
            return {}
        self._drain_for(user_id, collection)
        index = self._index
        if index is None or not self.uses_vectors:
            return {}
        try:
            with self._work:
                return index.vectors(user_id, collection)
        except IndexDamaged:
            self._damaged = True
            log.warning("reading vectors failed; the caller embeds instead", exc_info=True)
            return {}

    def index_embedded(
        self, user_id: str, collection: str, items: Mapping[str, tuple[str, Sequence[float]]]
    ) -> int:
        """Index items the caller already embedded ({id: (text, vector)}, e.g. a bulk import) and clear
        their outbox rows, so `drain` does not embed them a second time. An item whose text changed since
        (or that is gone) is left to `drain`; outbox rows added while this runs are kept. Returns how many
        were indexed; 0 without the index (the outbox keeps everything for whoever holds it)."""
        if not items or not self.uses_vectors:
            return 0
        index = self._index
        assert index is not None
        with self._work:
            top = (self.store.one("SELECT max(id) AS top FROM outbox") or {}).get("top") or 0
            ids = list(items)
            current = {
                item_id: row
                for start in range(0, len(ids), _PAGE)
                for item_id, row in self._current(collection, user_id, ids[start : start + _PAGE]).items()
                if row["text"] == items[item_id][0]
            }
            if not current:
                return 0
            rows = list(current.values())
            vectors = {row["id"]: list(items[row["id"]][1]) for row in rows}
            try:
                self._upsert_with_subsets(index, user_id, collection, rows, vectors)
            except IndexDamaged:
                self._damaged = True
                log.warning("vector index failed during a bulk upsert; the outbox keeps it", exc_info=True)
                return 0
            done = list(current)
            with self.store.write() as db:
                self.stored.save(db, collection, ((row["id"], row["text"], vectors[row["id"]]) for row in rows))
                for start in range(0, len(done), _PAGE):
                    chunk = done[start : start + _PAGE]
                    db.execute(
                        f"DELETE FROM outbox WHERE id <= ? AND user_id = ? AND collection = ? "
                        f"AND item_id IN ({','.join('?' * len(chunk))})",
                        [top, user_id, collection, *chunk],
                    )
            return len(done)

    # -- start-up and upkeep --------------------------------------------------------------------------

    def take_index(self) -> bool:
        """Take the lock if free and bring the index up to date (model check, repair, drain). Never blocks on
        the lock; waits for the embedder. True when this process now searches with vectors."""
        with self._work:
            try:
                if self._index is None:
                    if self._lock is not None and not self._lock.try_acquire():
                        return False
                    self._index = self._factory()
                    log.info("took the vector index")
                try:
                    self.check_model()
                    self.repair_if_damaged()
                    self.drain()
                except EmbedderUnavailable:
                    log.error("no embedder: searching with the full-text fallback", exc_info=True)
                except _Stopped:
                    return False
                except IndexDamaged:
                    if self._stopping:
                        return False
                    self._damaged = True
                    log.error("the vector index cannot be repaired now; will retry", exc_info=True)
                return self.uses_vectors
            finally:
                self._tried = True

    def _first_take(self) -> None:
        """Before the first search: take the index, or wait for the warm-up thread that is taking it. A
        rebuild that has run longer than `REBUILD_PATIENCE_SECONDS` is not waited for (the stored vectors
        answer)."""
        rebuilding_since: float | None = None
        while not self._work.acquire(timeout=0.05):
            if not self._rebuilding:
                rebuilding_since = None
                continue
            rebuilding_since = rebuilding_since or time.monotonic()
            if time.monotonic() - rebuilding_since > REBUILD_PATIENCE_SECONDS:
                return
        try:
            if not self._tried:
                self.take_index()
        finally:
            self._work.release()

    def acquire(self) -> bool:
        """Take the lock and open the index without checking or repairing it: for `reindex`, which rebuilds
        anyway. False when another process holds it."""
        with self._work:
            self._tried = True
            if self._index is None:
                if self._lock is not None and not self._lock.try_acquire():
                    return False
                self._index = self._factory()
            return True

    def close(self) -> None:
        """Let go of the index and the lock (shutdown), so another process can take them. Work running on
        another thread (a rebuild at start-up) stops at its next step instead of being waited for to the end."""
        self._stopping = True
        with self._work:
            if self._index is not None:
                self._index.close()
                self._index = None
            if self._lock is not None:
                self._lock.release()

    def _check_stop(self) -> None:
        if self._stopping:
            raise _Stopped

    def copy_early(self, user_id: str, kinds: Sequence[str] = ("styles", "images")) -> None:
        """Have the next maintenance pass copy this user's collections into memory without waiting for a
        query to ask (adapters/vector_cache.py): the stdio server's one user gets fast lookups from their
        first generation."""
        self._copy_early.extend((user_id, kind) for kind in kinds)

    def copies_wanted(self) -> bool:
        """Whether a query (or `copy_early`) asked for a collection's in-process copy that is not loaded."""
        index = self._index
        return bool(self._copy_early) or (index is not None and index.cache is not None
                                          and bool(index.cache.wanted()))

    def load_copies(self) -> None:
        """Copy the wanted collections into memory (adapters/vector_cache.py); `maintain` does this too, and
        the warm-up loop calls it between maintenance passes so a new user's copies do not wait for one."""
        # Under the work lock, never beside a drain, rebuild or repair: a copy read while a rebuild drops and
        # refills the collections could install a half-written matrix (CI caught one). Not waited for: a busy
        # index is copied at the next poll, since the collections stay wanted.
        if not self._work.acquire(blocking=False):
            return
        try:
            index = self._index
            if index is None:
                return
            while self._copy_early:
                index.want(*self._copy_early.pop())
            index.load_wanted()
        except IndexDamaged:
            if not self._stopping:
                self._damaged = True
                log.warning("copying collections into memory failed; the index will be repaired", exc_info=True)
        finally:
            self._work.release()

    def maintain(self) -> None:
        """The periodic call (cheap when all is well): retry the lock, repair after a runtime failure, drain
        what other processes and failed best-effort drains left in the outbox, copy the collections in use
        into memory."""
        if self._index is None and not self.take_index():
            return
        try:
            if self._damaged:
                self.repair_if_damaged()
            self.drain()
            self.load_copies()
        except EmbedderUnavailable:
            pass  # reported by the embedder's status(); FTS serves meanwhile
        except _Stopped:
            pass
        except IndexDamaged:
            if not self._stopping:
                self._damaged = True
                log.warning("vector index repair failed; will retry", exc_info=True)

    def check_model(self) -> bool:
        """Rebuild when the index was built by another model or dimension (never mix), or under an older
        `INDEX_LAYOUT`. True if rebuilt."""
        if self._meta("index_id") is None:
            # Never built (a new data directory, or a first build that a stopped process left unfinished):
            # building it is the normal first start, not a repair, so it is no warning.
            log.info("building the search index for the first time")
            self.rebuild()
            return True
        model, dimension = self._meta("embed_model"), self._meta("embed_dimension")
        if (model, dimension) != (self.embedder.model_name, str(self.embedder.dimension)):
            log.warning("the search index was built with the embedding model %s (%s dimensions); rebuilding it "
                        "from the database for %s, so that searches never mix the two", model, dimension,
                        self.embedder.model_name)
        elif self._meta("layout") != INDEX_LAYOUT:
            log.warning("the search index was built by an older version of context-server; rebuilding it once "
                        "from the database")
        else:
            return False
        self.rebuild()
        return True

    def repair_if_damaged(self) -> bool:
        """Rebuild when a rebuild was interrupted, Chroma fails, or the index is not the one SQLite recorded
        (deleted or replaced directory, reset server). True if it rebuilt."""
        with self._work:
            return self._repair()

    def _repair(self) -> bool:
        if self._index is None:
            return False
        self._check_stop()
        index = self._index
        reason: str | None = None
        broken = self._damaged
        if broken:
            reason = "it failed while in use"
        elif self._meta("rebuild_pending"):
            reason = "a rebuild was interrupted"
        else:
            try:
                remote = index.get_meta()
                index.probe(self.embedder.dimension)
            except IndexDamaged as exc:
                self._check_stop()  # a failure while closing says nothing about the index
                reason, broken = str(exc), True
            else:
                if remote is None or remote.get("index_id") != self._meta("index_id"):
                    reason = "its folder was deleted or replaced since it was built"
        if reason is None:
            return False
        log.warning("the search index needed repair (%s); rebuilding it from the database, which loses nothing",
                    reason)
        if broken:
            index.discard()
        self.rebuild()
        return True

    def rebuild(self, progress: Progress | None = None) -> int:
        """Rebuild the whole index from SQLite; returns items indexed. Safe to interrupt and run again: a
        `rebuild_pending` mark in `index_meta` makes the next start-up finish the job."""
        if self._index is None:
            raise RuntimeError("rebuild needs the index lock (another process holds it)")
        index = self._index
        with self._work:
            self._rebuilding = True
            try:
                self._set_meta({"rebuild_pending": "1"})
                try:
                    index.reset()
                except IndexDamaged:
                    self._check_stop()
                    index.discard()
                    index.reset()
                top = self.store.one("SELECT max(id) AS top FROM outbox")
                covered = (top or {}).get("top") or 0
                total = sum(self._count_indexable(c) for c in SOURCE_KINDS)
                done = 0
                for collection in SOURCE_KINDS:
                    for page in self._pages(collection):
                        self._check_stop()
                        by_user: dict[str, list[dict[str, Any]]] = {}
                        for row in page:
                            by_user.setdefault(row["user_id"], []).append(row)
                        vectors = self.stored.known(collection, page)
                        for user_id, rows in by_user.items():
                            self._upsert_with_subsets(index, user_id, collection, rows, vectors)
                        with self.store.write() as db:
                            self.stored.save(db, collection, ((row["id"], row["text"], vectors[row["id"]])
                                                              for row in page))
                        done += len(page)
                        if progress is not None:
                            progress(done, total)
                index_id = uuid.uuid4().hex
                index.set_meta({"index_id": index_id, "model": self.embedder.model_name})
                with self.store.write() as db:
                    db.execute("DELETE FROM outbox WHERE id <= ?", [covered])
                    for fts in ("memories_fts", "images_fts"):
                        db.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
                    self.stored.prune(db)
                    self._set_meta(
                        {
                            "index_id": index_id,
                            "embed_model": self.embedder.model_name,
                            "embed_dimension": str(self.embedder.dimension),
                            "layout": INDEX_LAYOUT,
                            "rebuild_pending": None,
                        }
                    )
                self._damaged = False
                log.info("vector index rebuilt: %d items", done)
                return done
            finally:
                self._rebuilding = False

    def _count_indexable(self, collection: str) -> int:
        src = SOURCES[collection]
        row = self.store.one(f"SELECT count(*) AS n FROM {src['table']} WHERE {src['indexable']}")
        return int(row["n"]) if row else 0

    def _pages(self, collection: str) -> Iterable[list[dict[str, Any]]]:
        src = SOURCES[collection]
        last = 0
        while True:
            page = self.store.query(
                f"SELECT rowid, id, user_id, {src['text']} AS text, {src['meta']} AS kind, created_at "
                f"FROM {src['table']} WHERE {src['indexable']} AND rowid > ? ORDER BY rowid LIMIT ?",
                (last, _PAGE),
            )
            if not page:
                return
            last = page[-1]["rowid"]
            yield page

    # -- search ---------------------------------------------------------------------------------------

    def search(
        self,
        user_id: str,
        collection: str,
        query_text: str,
        limit: int,
        *,
        candidates: Collection[str] | None = None,
        where: Mapping[str, str] | None = None,
        min_score: float = 0.0,
        take_index: bool = True,
    ) -> list[tuple[str, float]]:
        """`(item_id, score)` best first, with score in [0, 1]. `min_score` tells the vector path that the
        caller ignores hits below it (results below it may then be left out). `take_index=False` answers
        without taking (or waiting for) the index when this process has not taken it yet: the same answers.

        With the index: cosine similarity (see `adapters/index.py`), after draining pending changes so a
        search sees this user's latest writes. Without it (another process holds it, or it is being built or
        repaired): the same cosine similarity over the vectors stored in SQLite (`domain/search/stored.py`),
        so the answers are the same. Only when the embedding model failed to load: SQLite FTS5 keywords, BM25
        mapped to s / (1 + s). `candidates` restricts results to those ids; `where` filters on `kind`.
        """
        if collection not in SOURCE_KINDS:
            raise ValueError(f"unknown collection {collection!r}")
        if limit <= 0 or not query_text.strip():
            return []
        if not self._tried and take_index:
            # The first search waits for the index (and the model) while the background warm-up is taking it;
            # a process without the lock returns at once (and ranks with the stored vectors).
            self._first_take()
        if self.uses_vectors:
            self._drain_for(user_id, collection)
            index = self._index
            if index is not None and self.uses_vectors:
                try:
                    vector = self.embedder.embed([query_text])[0]
                    ids = list(candidates) if candidates is not None else None
                    subset = _subset_for(collection, where)
                    if subset is not None:
                        hits = index.query(user_id, subset, vector, limit, ids=ids)
                        return [(hit.id, hit.score) for hit in hits]
                    if where and ids is None:
                        found = self._query_then_filter(index, user_id, collection, vector, limit, where,
                                                        min_score)
                        if found is not None:
                            return found
                    hits = index.query(user_id, collection, vector, limit, where=where, ids=ids)
                    return [(hit.id, hit.score) for hit in hits]
                except IndexDamaged:
                    self._damaged = True
                    log.warning("the search index failed; searching the stored vectors until it is repaired",
                                exc_info=True)
                except EmbedderUnavailable:
                    pass
        if not self.embedder.failed:
            try:
                return self.stored.rank(user_id, collection, query_text, limit, candidates=candidates, where=where)
            except EmbedderUnavailable:
                pass
        # Without the model nothing can rank by meaning: keywords are all there is (doctor reports why).
        return self.text_search(user_id, collection, query_text, limit, candidates=candidates, where=where)

    def _query_then_filter(self, index: VectorIndex, user_id: str, collection: str, vector: list[float],
                           limit: int, where: Mapping[str, str], min_score: float) -> list[tuple[str, float]] | None:
        """Chroma's metadata filter costs ~4 ms a query at 10k items and ~40 ms at 100k; over-fetching and
        filtering on the SQLite rows (the truth) is cheaper. The answer is exact when enough survive, when
        the collection has no more, or when the last neighbour already scores below `min_score` (anything
        the filter could add scores lower still). Otherwise None: the caller asks Chroma with the filter."""
        wanted = max(limit * 10, 100)  # k=100 costs 3 ms at 100k items; the filtered query 36 ms
        hits = index.query(user_id, collection, vector, wanted)
        if not hits:
            return []
        src = SOURCES[collection]
        column = src["meta"]
        marks = ",".join("?" * len(hits))
        keep = {row["id"] for row in self.store.query(
            f"SELECT id FROM {src['table']} WHERE +user_id = ? AND +{column} = ? AND id IN ({marks})",
            [user_id, where["kind"], *(hit.id for hit in hits)])}
        found = [(hit.id, hit.score) for hit in hits if hit.id in keep]
        if len(found) >= limit or len(hits) < wanted or hits[-1].score < min_score:
            return [hit for hit in found if hit[1] >= min_score][:limit]
        return None

    def text_search(
        self,
        user_id: str,
        collection: str,
        query_text: str,
        limit: int,
        *,
        candidates: Collection[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[tuple[str, float]]:
        """The FTS5 fallback (see `search` and `domain/fulltext.py`)."""
        return fulltext_search(
            self.store,
            self.embedder,
            user_id,
            collection,
            query_text,
            limit,
            candidates=candidates,
            where=where,
        )

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


def _subsets_of(collection: str) -> tuple[str, ...]:
    return tuple(subset for subset, (source, _) in SUBSETS.items() if source == collection)


def _subset_for(collection: str, where: Mapping[str, str] | None) -> str | None:
    """The subset collection that holds exactly what `where` asks of `collection`, if there is one."""
    if not where or set(where) != {"kind"}:
        return None
    return next((subset for subset, (source, meta) in SUBSETS.items()
                 if source == collection and where["kind"] == meta), None)

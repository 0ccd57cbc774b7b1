"""The index's lifecycle: taking the directory lock, checking the model, repairing and rebuilding.

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

`INDEX_LAYOUT` is recorded with the model: a data directory indexed under an older layout is rebuilt once
at start-up. Changes `_index`, `_tried`, `_damaged`, `_rebuilding` and `_stopping`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from context_server.adapters.embedder import EmbedderUnavailable
from context_server.adapters.index import IndexDamaged
from context_server.domain.search.copies import VectorCopies
from context_server.domain.search.fulltext import SOURCES
from context_server.domain.search.outbox import _PAGE, Outbox
from context_server.domain.search.state import INDEX_LAYOUT, SOURCE_COLLECTIONS

__all__ = ["REBUILD_PATIENCE_SECONDS", "IndexLifecycle", "Progress"]

log = logging.getLogger(__name__)

#: progress(done, total) during a rebuild.
Progress = Callable[[int, int], None]
#: How long the first search waits for a rebuild that the warm-up is running before it ranks with the stored
#: vectors (the same answers, embedding what the rebuild has not stored yet).
REBUILD_PATIENCE_SECONDS = 2.0


class _Stopped(Exception):
    """The indexer is closing: the work in progress gives up where it stands. Nothing is lost: the outbox keeps
    what was not applied, and an interrupted rebuild is finished by the next start (`rebuild_pending`)."""


class IndexLifecycle(Outbox, VectorCopies):
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
        self._drain_wanted.set()  # the background drainer wakes and ends
        with self._work:
            if self._index is not None:
                self._index.close()
                self._index = None
            if self._lock is not None:
                self._lock.release()

    def _check_stop(self) -> None:
        if self._stopping:
            raise _Stopped

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
                total = sum(self._count_indexable(c) for c in SOURCE_COLLECTIONS)
                done = 0
                for collection in SOURCE_COLLECTIONS:
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

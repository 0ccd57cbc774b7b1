"""The outbox: writes record what changed, and draining brings the Chroma index to SQLite's current state.

SQLite is the truth; the index is derived. A write records an outbox row in the same transaction as the
data (`enqueue`), so a crash can never leave a committed row that the index will not hear about. `drain`
then brings each outboxed item to its *current* state in SQLite (upsert with our row id, or delete when
the row is gone or no longer indexable) and deletes the outbox rows only after Chroma accepted the change:
crashing anywhere and draining again is harmless, because upserts with fixed ids are idempotent.

What gets indexed: memories with scope `long_term`, and images with `incognito = 0`. The long-term style
memories are also kept in a `styles` collection of their own (`SUBSETS`): picking styles for a prompt is on
every generation's path, and Chroma's metadata filter on the memories collection cost 30-40 ms at 2,500
memories a user where the styles collection answers in ~3 ms. Writes only ever name `memories`; applying
them keeps the subset in step, with the vectors embedded once.

Changes `_damaged` when Chroma fails (for the lifecycle to repair).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlite_utils import Database

from context_server.adapters.embedder import EmbedderUnavailable
from context_server.adapters.index import IndexDamaged, VectorIndex
from context_server.adapters.store import now_iso
from context_server.domain.search.fulltext import SOURCES
from context_server.domain.search.state import SOURCE_COLLECTIONS, SUBSETS, IndexState

__all__ = ["OPS", "Outbox", "subsets_of"]

log = logging.getLogger(__name__)

OPS = ("upsert", "delete")
_PAGE = 256


class Outbox(IndexState):
    def enqueue(
        self, db: Database, user_id: str, collection: str, item_id: str, op: str, document: str = ""
    ) -> None:
        """Record that an item changed, inside the caller's `store.write()` transaction."""
        if collection not in SOURCE_COLLECTIONS or op not in OPS:
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

    def drain_soon(self) -> None:
        """After a write: wake the background drainer when one runs, else drain now.

        With the drainer (a running server) a save's reply does not wait for Chroma, and writes that arrive
        while it works go to Chroma together in its next pass. Nobody reads a stale index because of it: a
        search drains first whenever its user's collection has changes waiting (`_drain_for`), and SQLite,
        where the write is already committed, is the truth."""
        if not self.wake():
            self.drain()

    def wake(self) -> bool:
        """Wake the background drainer, if one runs (returns whether it does). For writes whose reply must
        never wait for an embedding, such as a generation: without a drainer (before the warm-up has loaded
        the model) their rows wait for the user's next search of that collection (`_drain_for`) or for
        `maintain()`."""
        drainer = self._drainer
        if drainer is not None and drainer.is_alive():
            self._drain_wanted.set()
            return True
        return False

    def start_draining(self) -> None:
        """Start the background drainer (once; it stops at `close`)."""
        if self._drainer is None:
            self._drainer = threading.Thread(target=self._drain_loop, name="index-drain", daemon=True)
            self._drainer.start()

    def _drain_loop(self) -> None:
        while not self._stopping:
            self._drain_wanted.wait()
            self._drain_wanted.clear()
            if self._stopping:
                return
            try:
                self.drain()
            except EmbedderUnavailable:
                pass  # reported by the embedder's status(); the outbox keeps the rows and FTS serves
            except Exception:
                log.warning("indexing after a write failed; the outbox keeps it for later", exc_info=True)

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
            for target in (collection, *subsets_of(collection)):
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
        for subset in subsets_of(collection):
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


def subsets_of(collection: str) -> tuple[str, ...]:
    return tuple(subset for subset, (source, _) in SUBSETS.items() if source == collection)

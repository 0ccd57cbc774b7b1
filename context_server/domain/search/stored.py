"""The vectors of indexed items, kept in SQLite too, so that every process ranks with the same vectors.

Only the process holding the Chroma lock opens the index (SPEC §2). Another process (a second server that
Claude Desktop started, the CLI while a server runs), and the holder while its index is being built or
repaired, rank with these instead: exact cosine similarity over the user's indexable items, in numpy, the
measure the index uses (`adapters/index.py`), over the same vectors. It gives the same references and the
same ranking as the holder; it may take longer, never answer differently.

How the copies stay exact:

- whoever embeds an item writes its vector here: the holder's drain and rebuild, a bulk import, and a
  search that finds an item without one (it embeds the item itself, so nothing waits for the holder). The
  write checks, in its transaction, that the item still has the text that was embedded;
- `Indexer.enqueue`, called in the transaction of every change to an indexed item, deletes the item's
  vector there (`forget`), so a vector of an older text is never read;
- a vector of another model is ignored and replaced; a rebuild drops those and the orphans.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlite_utils import Database

from context_server.adapters.embedder import Embedder
from context_server.adapters.store import Store
from context_server.domain.search.fulltext import SOURCES, item_filters, text_of

__all__ = ["StoredVectors"]



def _blob(vector: Sequence[float]) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


class StoredVectors:
    """Read, write and rank with the `item_vectors` table; see the module docstring."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def forget(self, db: Database, user_id: str, collection: str, item_id: str) -> None:
        """Inside the transaction that changes (or deletes) the item."""
        db.execute("DELETE FROM item_vectors WHERE user_id = ? AND collection = ? AND item_id = ?",
                   [user_id, collection, item_id])

    def save(self, db: Database, collection: str, items: Iterable[tuple[str, str, Sequence[float]]]) -> None:
        """Keep `(item_id, text, vector)` for the items that still have that text and are still indexable,
        inside the caller's write transaction."""
        src = SOURCES[collection]
        db.conn.executemany(
            f"INSERT OR REPLACE INTO item_vectors (collection, item_id, user_id, model, vector) "
            f"SELECT ?, t.id, t.user_id, ?, ? FROM {src['table']} t "
            f"WHERE t.id = ? AND {text_of(src)} = ? AND {src['indexable']}",
            [(collection, self.embedder.model_name, _blob(vector), item_id, text)
             for item_id, text, vector in items],
        )

    def known(self, collection: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
        """The stored vectors of this model for these rows (`id`, `text`) whose text they were made from: a
        rebuild reuses them instead of embedding again."""
        if not rows:
            return {}
        src = SOURCES[collection]
        texts = {row["id"]: row["text"] for row in rows}
        found = self.store.query(
            f"SELECT v.item_id, v.vector, {text_of(src)} AS text FROM item_vectors v JOIN {src['table']} t "
            f"ON t.id = v.item_id WHERE v.collection = ? AND v.model = ? "
            f"AND v.item_id IN ({','.join('?' * len(texts))})",
            [collection, self.embedder.model_name, *texts])
        return {row["item_id"]: np.frombuffer(row["vector"], dtype=np.float32).tolist()
                for row in found if texts.get(row["item_id"]) == row["text"]}

    def prune(self, db: Database) -> None:
        """Drop vectors of another model and of items that are gone or no longer indexed (after a rebuild)."""
        db.execute("DELETE FROM item_vectors WHERE model != ?", [self.embedder.model_name])
        for collection, src in SOURCES.items():
            db.execute(
                f"DELETE FROM item_vectors WHERE collection = ? AND item_id NOT IN "
                f"(SELECT id FROM {src['table']} WHERE {src['indexable']})", [collection])

    def rank(
        self,
        user_id: str,
        collection: str,
        query_text: str,
        limit: int,
        *,
        candidates: Collection[str] | None = None,
        where: Mapping[str, str] | None = None,
    ) -> list[tuple[str, float]]:
        """`(item_id, score)` best first, score = cosine similarity clipped to [0, 1], over every indexable
        item of the user (restricted to `candidates`, filtered on `where`). Items without a stored vector are
        embedded here and stored. Waits for the embedding model like any search."""
        if limit <= 0 or (candidates is not None and not candidates):
            return []
        src = SOURCES[collection]
        sql = (f"SELECT t.id, {text_of(src)} AS text, v.vector, v.model FROM {src['table']} t "
               f"LEFT JOIN item_vectors v ON v.collection = ? AND v.item_id = t.id "
               f"WHERE t.user_id = ? AND {src['indexable']}")
        extra, extra_params = item_filters(collection, candidates, where)
        sql += extra
        params: list[Any] = [collection, user_id, *extra_params]
        rows = self.store.query(sql, params)
        query = self.embedder.embed([query_text])[0]
        if not rows:
            return []
        model = self.embedder.model_name
        missing = [row for row in rows if row["vector"] is None or row["model"] != model]
        if missing:
            embedded = self.embedder.embed([row["text"] for row in missing])
            for row, vector in zip(missing, embedded, strict=True):
                row["vector"] = _blob(vector)
            with self.store.write() as db:
                self.save(db, collection, ((row["id"], row["text"], vector)
                                           for row, vector in zip(missing, embedded, strict=True)))
        matrix = np.frombuffer(b"".join(row["vector"] for row in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), -1)
        norms = np.linalg.norm(matrix, axis=1)
        norms[norms == 0] = 1.0
        unit = np.asarray(query, dtype=np.float32)
        unit = unit / (float(np.linalg.norm(unit)) or 1.0)
        # einsum, not `@`: see adapters/vector_cache.py (OpenBLAS threads spinning beside the embedder).
        scores = np.clip(np.einsum("ij,j->i", matrix, unit) / norms, 0.0, 1.0)
        order = np.argsort(-scores, kind="stable")[:limit]
        return [(rows[int(i)]["id"], float(scores[int(i)])) for i in order]

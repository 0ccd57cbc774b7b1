"""Search routing: which ranking answers a query (Chroma, the vectors stored in SQLite, or FTS5 keywords).

See `search`. Every path gives a score in [0, 1], and the first two give the same answers. Changes
`_damaged` when Chroma fails mid-query (the stored vectors answer until it is repaired).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from context_server.adapters.embedder import EmbedderUnavailable
from context_server.adapters.index import IndexDamaged, VectorIndex
from context_server.domain.search.fulltext import SOURCES, fulltext_search
from context_server.domain.search.lifecycle import IndexLifecycle
from context_server.domain.search.state import SOURCE_COLLECTIONS, SUBSETS

__all__ = ["SearchRouting"]

log = logging.getLogger(__name__)


class SearchRouting(IndexLifecycle):
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
        if collection not in SOURCE_COLLECTIONS:
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


def _subset_for(collection: str, where: Mapping[str, str] | None) -> str | None:
    """The subset collection that holds exactly what `where` asks of `collection`, if there is one."""
    if not where or set(where) != {"kind"}:
        return None
    return next((subset for subset, (source, meta) in SUBSETS.items()
                 if source == collection and where["kind"] == meta), None)

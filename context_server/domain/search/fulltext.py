"""Search without the vector index: SQLite FTS5 over the same items the index would hold.

A process that does not hold the Chroma lock (or whose index is being rebuilt or is damaged) still has to
answer `search_memories` and resolve references. FTS5 finds the candidates (BM25 over any of the query's
words, each passed as a quoted term so user text is never FTS5 syntax). Scores, in [0, 1]:

- when the embedder is already loaded, the candidates are re-scored by cosine similarity, so a score
  means the same as one from the index;
- otherwise BM25 is mapped to s / (1 + s), with s = -bm25 (FTS5 reports better matches as more negative).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from context_server.adapters.embedder import Embedder, cosine
from context_server.adapters.store import Store
from context_server.domain.text import fts_query

__all__ = ["SOURCES", "WHERE_COLUMNS", "fulltext_search", "item_filters", "text_of"]

# Per collection: how to read the indexable state of items, and the FTS table behind the fallback.
SOURCES: dict[str, dict[str, str]] = {
    "memories": {
        "table": "memories",
        "text": "content",
        "meta": "kind",
        "indexable": "scope = 'long_term'",
        "fts": "memories_fts",
    },
    "images": {
        "table": "images",
        "text": "coalesce(search_text, prompt)",  # an edit is found by its source's description too
        "fts_text": "coalesce(t.search_text, t.prompt)",
        "meta": "'image'",
        "indexable": "coalesce(incognito, 0) = 0",
        "fts": "images_fts",
    },
}
#: `where` keys the FTS fallback understands, per collection (column names; values are bound parameters).
WHERE_COLUMNS = {"memories": {"kind"}, "images": set[str]()}


def text_of(src: dict[str, str]) -> str:
    """The item's text as an expression on the source table aliased `t` (images: their description)."""
    return src.get("fts_text", "t." + src["text"])


def item_filters(collection: str, candidates: Collection[str] | None,
                 where: Mapping[str, str] | None) -> tuple[str, list[Any]]:
    """SQL (` AND ...` on the item table aliased `t`) and its parameters restricting a search to `candidates`
    and to the `where` columns a collection may be filtered on; shared by the FTS and stored-vector rankings."""
    sql, params = "", []
    for key, value in (where or {}).items():
        if key not in WHERE_COLUMNS[collection]:
            raise ValueError(f"cannot filter {collection} on {key!r}")
        sql += f" AND t.{key} = ?"
        params.append(value)
    if candidates is not None:
        sql += f" AND t.id IN ({','.join('?' * len(candidates))})"
        params.extend(candidates)
    return sql, params


def fulltext_search(
    store: Store,
    embedder: Embedder,
    user_id: str,
    collection: str,
    query_text: str,
    limit: int,
    *,
    candidates: Collection[str] | None = None,
    where: Mapping[str, str] | None = None,
) -> list[tuple[str, float]]:
    """`(item_id, score)` best first from SQLite FTS5; see the module docstring for the scores."""
    match = fts_query(query_text)
    if match is None or (candidates is not None and not candidates):
        return []
    src = SOURCES[collection]
    sql = (
        f"SELECT t.id, {text_of(src)} AS text, bm25({src['fts']}) AS rank FROM {src['fts']} "
        f"JOIN {src['table']} t ON t.rowid = {src['fts']}.rowid "
        f"WHERE {src['fts']} MATCH ? AND t.user_id = ? AND {src['indexable']}"
    )
    extra, extra_params = item_filters(collection, candidates, where)
    sql += extra
    params: list[Any] = [match, user_id, *extra_params]
    sql += " ORDER BY rank LIMIT ?"
    params.append(max(limit * 4, 20) if embedder.ready else limit)
    rows = store.query(sql, params)
    if not rows:
        return []
    if embedder.ready:
        vectors = embedder.embed([query_text, *(row["text"] for row in rows)])
        pairs = zip(rows, vectors[1:], strict=True)
        scored = [(row["id"], cosine(vectors[0], vec)) for row, vec in pairs]
        scored.sort(key=lambda pair: pair[1], reverse=True)
        return scored[:limit]
    return [(row["id"], -row["rank"] / (1.0 - row["rank"])) for row in rows[:limit]]

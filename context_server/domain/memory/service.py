"""What the user asked us to remember: save (with near-duplicate merging), list, search, update, delete.

Every method takes the `user_id` first and only ever touches that user's rows; another user's memory id
raises `NotFound` exactly like an id that does not exist. Every write commits the row and its outbox entry
in one `store.write()` transaction, then drains the outbox best-effort (see `domain/search/outbox.py`).

Near-duplicates (same user, same kind, same scope, and for session memories the same session) are merged
instead of stored twice. Two memories are "near" when either

- their normalised text is equal (NFKC, casefolded, spacing and edge punctuation ignored), or
- the cosine similarity of their all-MiniLM-L6-v2 embeddings is >= `MERGE_SIMILARITY` (0.92).

0.92 was chosen on measured pairs: rewordings such as "I prefer watercolor illustrations" / "Watercolor
illustrations are my preference" score 0.927 and merge, while "Use a warm pastel color palette" / "Use a
cool pastel color palette" (opposite meaning, same words) score 0.916 and stay apart (tests pin both).
The merge keeps the existing memory's content and id, unions the tags (at most 20), keeps it pinned if
either was, and bumps `updated_at`. Candidates are the closest memories by vector search plus full-text
search; without an embedder only the normalised-text rule applies.

`replaces` supersedes an older memory: the old row is deleted (and removed from the index) in the same
transaction that stores the new one, whose `replaces` column keeps the old id for provenance. A pinned
memory's replacement is pinned too (the pin is kept, never silently dropped); unpin with update_memory.

Session-scope memories carry the session id, are never indexed in Chroma (they die with the connection),
are listed and searched only for that session, and are deleted by `purge_session`.
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from context_server.adapters.embedder import EmbedderUnavailable, cosine
from context_server.adapters.store import Store, now_iso
from context_server.domain.memory.rules import (
    MAX_LIST,
    MAX_SEARCH,
    MEMORY_KINDS,
    SCOPES,
    Memory,
    SaveResult,
    check_choice,
    check_content,
    check_tags,
    effective_applies_to,
    merge_tags,
    visibility_sql,
)
from context_server.domain.memory.scope import ALWAYS, read_style, subject_keys
from context_server.domain.paging import decode_cursor, page
from context_server.domain.search.indexing import Indexer
from context_server.domain.text import fts_query, normalise_for_match, sanitise
from context_server.errors import InvalidInput, NotFound

__all__ = ["MEMORY_KINDS", "MERGE_SIMILARITY", "SCOPES", "Memories", "Memory", "SaveResult", "scope_columns"]

log = logging.getLogger(__name__)

MERGE_SIMILARITY = 0.92
_MERGE_CANDIDATES = 10

MemoryPage = tuple[list[Memory], str | None]


class Memories:
    def __init__(self, store: Store, indexer: Indexer) -> None:
        self.store = store
        self.indexer = indexer
        # A user's duplicate check and insert happen as one step. The lock is per user: one user's save
        # (which embeds, ~10-30 ms) never waits for another's, as it did behind one process-wide lock.
        self._save_locks: dict[str, threading.Lock] = {}
        self._save_locks_guard = threading.Lock()

    # -- writes ---------------------------------------------------------------------------------------

    def save(
        self,
        user_id: str,
        content: str,
        kind: str = "note",
        scope: str = "long_term",
        tags: Sequence[str] | None = None,
        pinned: bool = False,
        replaces: str | None = None,
        session_id: str | None = None,
        applies_to: str | None = None,
    ) -> SaveResult:
        text = check_content(content)
        check_choice("kind", kind, MEMORY_KINDS)
        scoping = scope_columns(text, kind, applies_to)
        check_choice("scope", scope, SCOPES)
        clean_tags = check_tags(tags)
        if scope == "session" and not session_id:
            raise InvalidInput("scope 'session' needs a session; use scope 'long_term' outside a session")
        session = session_id if scope == "session" else None
        with self._save_lock(user_id):
            old = self._row(user_id, replaces) if replaces else None
            # A replacement keeps the pin of what it replaces: "replace my pinned style" is an edit, not an unpin.
            pinned = pinned or bool(old is not None and old["pinned"])
            twin = self._find_duplicate(user_id, text, kind, scope, session, exclude=replaces)
            now = now_iso()
            with self.store.write() as db:
                if twin is not None:
                    merged = merge_tags(json.loads(twin["tags"] or "[]"), clean_tags)
                    changes = {"tags": json.dumps(merged), "pinned": int(bool(twin["pinned"]) or pinned),
                               "updated_at": now}
                    if applies_to is not None and kind == "style":
                        changes.update(scoping)
                    db.table("memories").update(twin["id"], changes)
                    kept = {**twin, **changes}
                    result = SaveResult(twin["id"], kind, scope, merged_into=twin["id"],
                                        applies_to=effective_applies_to(kept),
                                        placement=kept.get("placement") or scope_columns(twin["content"], kind, None).get(
                                            "placement"))
                else:
                    memory_id = secrets.token_hex(12)
                    db.table("memories").insert(
                        {
                            "id": memory_id,
                            "user_id": user_id,
                            "session_id": session,
                            "content": text,
                            "kind": kind,
                            "scope": scope,
                            "tags": json.dumps(clean_tags),
                            "pinned": int(pinned),
                            "use_count": 0,
                            "last_used_at": None,
                            "replaces": replaces,
                            "created_at": now,
                            "updated_at": now,
                            **scoping,
                        }
                    )
                    if scope == "long_term":
                        self.indexer.enqueue(db, user_id, "memories", memory_id, "upsert", text)
                    result = SaveResult(memory_id, kind, scope,
                                        applies_to=ALWAYS if pinned and kind == "style" else scoping["applies_to"],
                                        placement=scoping["placement"])
                if old is not None and old["id"] != result.memory_id:
                    self._delete_row(db, user_id, old)
        self._drain()
        return result

    def update(
        self,
        user_id: str,
        memory_id: str,
        content: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        pinned: bool | None = None,
        applies_to: str | None = None,
    ) -> Memory:
        row = self._row(user_id, memory_id)
        changes: dict[str, Any] = {}
        new_kind = kind if kind is not None else row["kind"]
        if applies_to is not None and new_kind != "style":
            raise InvalidInput("applies_to is for style memories; preferences, facts and notes are never put in "
                               "prompts (change kind to 'style' to make it one)")
        if content is not None:
            changes["content"] = check_content(content)
        if kind is not None:
            changes["kind"] = check_choice("kind", kind, MEMORY_KINDS)
        if tags is not None:
            changes["tags"] = json.dumps(check_tags(tags))
        if pinned is not None:
            changes["pinned"] = int(pinned)
        if "content" in changes or "kind" in changes or applies_to is not None:
            # a stated scope stays unless a new one is given; a new text is read again
            kept = applies_to
            if applies_to is None and "content" not in changes and row["kind"] == "style" == new_kind:
                kept = row["applies_to"]
            changes.update(scope_columns(changes.get("content", row["content"]), new_kind, kept))
        if not changes:
            raise InvalidInput("nothing to update: pass content, kind, tags, pinned or applies_to")
        changes["updated_at"] = now_iso()
        with self.store.write() as db:
            db.table("memories").update(row["id"], changes)
            if row["scope"] == "long_term" and ("content" in changes or "kind" in changes):
                self.indexer.enqueue(db, user_id, "memories", row["id"], "upsert", changes.get("content", ""))
        self._drain()
        return self.get(user_id, memory_id)

    def delete(self, user_id: str, memory_id: str) -> None:
        row = self._row(user_id, memory_id)
        with self.store.write() as db:
            self._delete_row(db, user_id, row)
        self._drain()

    def style_words(self, user_id: str, limit: int = 50) -> list[str]:
        """Short remembered styles ("muted watercolour"), offered as completions for style-like arguments."""
        rows = self.store.query(
            "select content from memories where user_id = ? and kind = 'style' and scope = 'long_term' "
            "and length(content) <= 60 order by use_count desc, updated_at desc limit ?",
            [user_id, limit],
        )
        return [r["content"] for r in rows]

    def mark_used(self, user_id: str, ids: Iterable[str]) -> int:
        """Count that memories were applied (enrichment calls this); unknown or foreign ids are skipped."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        with self.store.write() as db:
            cursor = db.execute(
                "UPDATE memories SET use_count = coalesce(use_count, 0) + 1, last_used_at = ? "
                f"WHERE +user_id = ? AND id IN ({','.join('?' * len(wanted))})",
                [now_iso(), user_id, *wanted],
            )
            return int(cursor.rowcount)

    def purge_session(self, user_id: str, session_id: str) -> int:
        """Forget a finished session's memories (they were never indexed); returns how many."""
        with self.store.write() as db:
            cursor = db.execute(
                "DELETE FROM memories WHERE user_id = ? AND scope = 'session' AND session_id = ?",
                [user_id, session_id],
            )
            return int(cursor.rowcount)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, user_id: str, memory_id: str) -> Memory:
        return Memory.from_row(self._row(user_id, memory_id))

    def list(
        self,
        user_id: str,
        kind: str | None = None,
        scope: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        session_id: str | None = None,
    ) -> MemoryPage:
        """Newest first. Without `scope`: long-term memories plus this session's. `next_cursor` is opaque."""
        if kind is not None:
            check_choice("kind", kind, MEMORY_KINDS)
        if scope is not None:
            check_choice("scope", scope, SCOPES)
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST}, got {limit}")
        params: builtins.list[Any] = [user_id]
        where = [visibility_sql(scope, session_id, params)]
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        before = decode_cursor(cursor)
        if before is not None:
            created_at, last_id = before
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params.extend([created_at, created_at, last_id])
        rows = self.store.query(
            f"SELECT * FROM memories WHERE user_id = ? AND {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        )
        shown, next_cursor = page(rows, limit)
        return [Memory.from_row(row) for row in shown], next_cursor

    def pinned(
        self, user_id: str, kind: str = "style", session_id: str | None = None
    ) -> builtins.list[Memory]:
        """Pinned memories of a kind (a pinned style applies to every generation), newest first."""
        params: builtins.list[str] = [user_id]
        scope = visibility_sql(None, session_id, params)
        rows = self.store.query(
            f"SELECT * FROM memories WHERE user_id = ? AND {scope} AND kind = ? AND pinned = 1 "
            "ORDER BY created_at DESC, id DESC",
            [*params, check_choice("kind", kind, MEMORY_KINDS)],
        )
        return [Memory.from_row(row) for row in rows]

    def search(
        self, user_id: str, query: str, limit: int = 5, kind: str | None = None, session_id: str | None = None,
        min_score: float = 0.0,
    ) -> builtins.list[Memory]:
        """Memories ranked by meaning (`score` in [0, 1], see `Indexer.search`); this session's included."""
        text = sanitise(query)
        if not text:
            raise InvalidInput("query must contain some text")
        if not 1 <= limit <= MAX_SEARCH:
            raise InvalidInput(f"limit must be between 1 and {MAX_SEARCH}, got {limit}")
        if kind is not None:
            check_choice("kind", kind, MEMORY_KINDS)
        where = {"kind": kind} if kind else None
        hits = dict(self.indexer.search(user_id, "memories", text, limit, where=where, min_score=min_score))
        found = [Memory.from_row(row, hits[row["id"]]) for row in self._rows(user_id, hits)]
        if session_id:
            found.extend(self._search_session(user_id, session_id, text, kind))
        found.sort(key=lambda m: (m.score or 0.0, m.updated_at), reverse=True)
        return found[:limit]

    # -- helpers --------------------------------------------------------------------------------------

    def _save_lock(self, user_id: str) -> threading.Lock:
        with self._save_locks_guard:
            return self._save_locks.setdefault(user_id, threading.Lock())

    def _row(self, user_id: str, memory_id: str | None) -> dict[str, Any]:
        row = self.store.one("SELECT * FROM memories WHERE id = ? AND user_id = ?", (memory_id, user_id))
        if row is None:
            raise NotFound(f"memory {memory_id!r} not found")
        return row

    def _rows(self, user_id: str, ids: Iterable[str]) -> builtins.list[dict[str, Any]]:
        wanted = list(ids)
        if not wanted:
            return []
        return self.store.query(
            f"SELECT * FROM memories WHERE +user_id = ? AND id IN ({','.join('?' * len(wanted))})",
            [user_id, *wanted],
        )

    def _delete_row(self, db: Any, user_id: str, row: dict[str, Any]) -> None:
        db.execute("DELETE FROM memories WHERE id = ? AND user_id = ?", [row["id"], user_id])
        if row["scope"] == "long_term":
            self.indexer.enqueue(db, user_id, "memories", row["id"], "delete")

    def _search_session(
        self, user_id: str, session_id: str, text: str, kind: str | None
    ) -> builtins.list[Memory]:
        params: builtins.list[str] = [user_id, session_id]
        sql = "SELECT * FROM memories WHERE user_id = ? AND scope = 'session' AND session_id = ?"
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self.store.query(sql + " ORDER BY created_at DESC LIMIT 200", params)
        if not rows:
            return []
        try:
            vectors = self.indexer.embedder.embed([text, *(row["content"] for row in rows)])
        except EmbedderUnavailable:
            words = set(normalise_for_match(text).split())
            return [
                Memory.from_row(row, 0.5)
                for row in rows
                if words & set(normalise_for_match(row["content"]).split())
            ]
        pairs = zip(rows, vectors[1:], strict=True)
        return [Memory.from_row(row, cosine(vectors[0], vec)) for row, vec in pairs]

    def _find_duplicate(
        self, user_id: str, text: str, kind: str, scope: str, session: str | None, exclude: str | None
    ) -> dict[str, Any] | None:
        """The memory `text` would duplicate, per the rule in the module docstring, or None."""
        params: builtins.list[Any] = [user_id, kind]
        same = "m.kind = ? AND " + visibility_sql(scope, session, params, column="m.")
        exact = self.store.query(f"SELECT * FROM memories m WHERE m.user_id = ? AND {same} AND m.content = ?",
                                 [*params, text])
        rows = {row["id"]: row for row in exact}
        match = fts_query(text)
        if match is not None:
            for row in self.store.query(
                f"SELECT m.* FROM memories_fts JOIN memories m ON m.rowid = memories_fts.rowid "
                f"WHERE memories_fts MATCH ? AND m.user_id = ? AND {same} "
                f"ORDER BY bm25(memories_fts) LIMIT {_MERGE_CANDIDATES}",
                [match, *params],
            ):
                rows[row["id"]] = row
        if scope == "long_term" and not self.indexer.embedder.failed:  # every process: the same candidates
            hits = self.indexer.search(user_id, "memories", text, _MERGE_CANDIDATES, where={"kind": kind},
                                       take_index=False)
            rows.update({r["id"]: r for r in self._rows(user_id, (h for h, _ in hits)) if r["kind"] == kind})
        rows.pop(exclude or "", None)
        if not rows:
            return None
        wanted = normalise_for_match(text)
        for row in rows.values():
            if normalise_for_match(row["content"]) == wanted:
                return row
        candidates = list(rows.values())
        try:
            vectors = self.indexer.embedder.embed([text, *(row["content"] for row in candidates)])
        except EmbedderUnavailable:
            log.warning("no embedder: merging only identical memories", exc_info=True)
            return None
        score, best = max(
            ((cosine(vectors[0], vec), row) for row, vec in zip(candidates, vectors[1:], strict=True)),
            key=lambda pair: pair[0],
        )
        return best if score >= MERGE_SIMILARITY else None

    def _drain(self) -> None:
        try:
            self.indexer.drain_soon()
        except Exception:
            log.warning("indexing after a write failed; the outbox keeps it for later", exc_info=True)


def scope_columns(content: str, kind: str, applies_to: str | None) -> dict[str, Any]:
    """The stored scope columns of a memory (see scope.py): only styles have them."""
    if applies_to is not None and not applies_to.strip():
        raise InvalidInput("applies_to must be 'always' or a subject such as 'logos' or 'portraits'")
    if kind != "style":
        if applies_to is not None:
            raise InvalidInput("applies_to is for style memories; preferences, facts and notes are never put in "
                               "prompts")
        return {"applies_to": None, "placement": None, "prompt_phrase": None, "subject_keys": None}
    found = read_style(content, applies_to.strip() if applies_to else None)
    return {"applies_to": found.applies_to, "placement": found.placement, "prompt_phrase": found.phrase,
            "subject_keys": subject_keys(found.applies_to)}

"""Moving a user's memories in and out as JSON Lines: `export_jsonl` and `import_jsonl`.

One memory per line, with the fields `get_all_memories` returns (memory_id, content, kind, scope, tags,
pinned, created_at, updated_at, use_count, last_used_at, replaces). Export writes long-term memories
oldest first; session memories belong to one connection and are neither exported nor imported.

Import follows `Memories.save`'s rules (sanitising, limits, near-duplicate merging: see
`domain/memory/service.py`) but in bulk, because saving 20,000 memories one at a time (one duplicate search and
one embedding call each) takes far too long on a laptop:

1. every line is parsed and validated; a broken line is skipped with its line number and the reason;
2. a line is *recognised* without any embedding when its `memory_id` is already this user's (or came
   earlier in the file), or its normalised text equals a memory of the same kind: it merges;
3. the rest are embedded in batches and compared, by cosine similarity, with the user's memories of the
   same kind (vectors read back from the index where this process holds it, else embedded) and with the
   lines accepted before them; at `MERGE_SIMILARITY` or more they merge, else they are added;
4. rows and their outbox entries are written in batched transactions, then indexed with the vectors
   already computed (`Indexer.index_embedded`), so nothing is embedded twice.

Merging keeps the existing memory's text and id, unions the tags and keeps it pinned if either was, as
`save` does; a merge that changes nothing writes nothing, so importing the same file again is a no-op.
An exported `memory_id` is kept when free, so a re-import recognises it; one that belongs to another user
gets a new id. Concurrent saves by another process are not serialised with an import (they may add a
near-duplicate that the import would have merged); run imports while the server is idle for exactness.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from context_server.adapters.store import now_iso
from context_server.domain.memory.rules import (
    MEMORY_KINDS,
    check_choice,
    check_content,
    check_tags,
    merge_tags,
)
from context_server.domain.memory.service import MERGE_SIMILARITY, Memories, scope_columns
from context_server.domain.text import normalise_for_match
from context_server.errors import InvalidInput

__all__ = ["EXPORT_FIELDS", "ImportReport", "export_jsonl", "import_jsonl"]

#: The fields of one exported line, in order.
EXPORT_FIELDS = ("memory_id", "content", "kind", "scope", "tags", "pinned", "created_at", "updated_at",
                 "use_count", "last_used_at", "replaces")

#: progress(done, total): lines handled so far, of all lines.
Progress = Callable[[int, int], None]

_BATCH = 256
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@dataclass
class ImportReport:
    added: int = 0
    merged: int = 0
    #: (line number, why), for every line that was not imported.
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "merged": self.merged,
                "skipped": [{"line": line, "reason": reason} for line, reason in self.skipped]}


@dataclass(eq=False)
class _Entry:
    """One import line while it is being merged: not a `Memory` (it has no scope or score yet, its id may
    be None, and it carries its line number, normalised text, merge target and vector, and changes as
    merging proceeds)."""

    line: int
    memory_id: str | None
    content: str
    kind: str
    tags: list[str]
    pinned: bool
    created_at: str
    updated_at: str
    use_count: int
    last_used_at: str | None
    replaces: str | None
    norm: str = ""
    #: The memory this line merges into: an existing id, or an earlier accepted `_Entry`.
    into: str | _Entry | None = None
    vector: Any = None


def export_jsonl(memories: Memories, user_id: str) -> Iterator[str]:
    """The user's long-term memories as JSON lines (no newline), oldest first."""
    last = -1
    while True:
        rows = memories.store.query(
            "SELECT rowid, * FROM memories WHERE user_id = ? AND scope = 'long_term' AND rowid > ? "
            "ORDER BY rowid LIMIT 500",
            [user_id, last],
        )
        if not rows:
            return
        last = rows[-1]["rowid"]
        for row in sorted(rows, key=lambda r: (r["created_at"], r["id"])):
            yield json.dumps({
                "memory_id": row["id"], "content": row["content"], "kind": row["kind"], "scope": row["scope"],
                "tags": json.loads(row["tags"] or "[]"), "pinned": bool(row["pinned"]),
                "created_at": row["created_at"], "updated_at": row["updated_at"],
                "use_count": row["use_count"] or 0, "last_used_at": row["last_used_at"],
                "replaces": row["replaces"],
            }, ensure_ascii=False)


def import_jsonl(memories: Memories, user_id: str, lines: Iterable[str],
                 progress: Progress | None = None) -> ImportReport:
    """Import JSON lines (see the module docstring); returns what was added, merged and skipped, and why."""
    report = ImportReport()
    entries: list[_Entry] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entries.append(_parse(number, raw))
        except InvalidInput as exc:
            report.skipped.append((number, str(exc)))
    total = len(entries)
    existing = _existing(memories, user_id)
    taken = _taken_elsewhere(memories, user_id, [e.memory_id for e in entries if e.memory_id])
    pending = _recognise(entries, existing, taken)
    done = total - len(pending)
    if progress is not None:
        progress(done, total)
    if pending:
        pools = _existing_pools(memories, user_id, existing, {e.kind for e in pending})
        # Embed shortest first, so each model batch holds texts of similar length (less padding), then
        # decide merges in file order.
        by_length = sorted(pending, key=lambda e: len(e.content))
        for start in range(0, len(by_length), _BATCH):
            batch = by_length[start : start + _BATCH]
            for entry, vector in zip(batch, memories.indexer.embedder.embed([e.content for e in batch]), strict=True):
                entry.vector = np.asarray(vector, dtype=np.float32)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        for start in range(0, len(pending), _BATCH):
            batch = pending[start : start + _BATCH]
            for kind in {e.kind for e in batch}:
                same = [e for e in batch if e.kind == kind]
                _merge_near(pools.setdefault(kind, _Pool()), same, np.vstack([e.vector for e in same]))
    _write(memories, user_id, entries, existing, report)
    return report


# -- steps ----------------------------------------------------------------------------------------------


def _parse(line: int, raw: str) -> _Entry:
    try:
        item = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"not valid JSON ({exc.args[0].split(':')[0]})") from None
    if not isinstance(item, dict):
        raise InvalidInput("not a JSON object")
    content = item.get("content")
    if not isinstance(content, str):
        raise InvalidInput("content is missing or not text")
    scope = item.get("scope", "long_term")
    if scope == "session":
        raise InvalidInput("session memories belong to one connection and are not imported")
    check_choice("scope", scope, ("long_term",))
    kind = item.get("kind", "note")
    check_choice("kind", kind if isinstance(kind, str) else repr(kind), MEMORY_KINDS)
    tags = item.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput("tags must be a list of strings")
    pinned = item.get("pinned", False)
    if pinned not in (True, False, 0, 1):
        raise InvalidInput("pinned must be true or false")
    memory_id = item.get("memory_id")
    now = now_iso()
    created = _time(item.get("created_at")) or now
    text = check_content(content)
    use_count = item.get("use_count")
    return _Entry(
        line=line,
        memory_id=memory_id if isinstance(memory_id, str) and _ID.match(memory_id) else None,
        content=text,
        kind=kind,
        tags=check_tags(tags),
        pinned=bool(pinned),
        created_at=created,
        updated_at=_time(item.get("updated_at")) or created,
        use_count=use_count if isinstance(use_count, int) and use_count >= 0 else 0,
        last_used_at=_time(item.get("last_used_at")),
        replaces=item["replaces"] if isinstance(item.get("replaces"), str) and _ID.match(item["replaces"]) else None,
        norm=normalise_for_match(text),
    )


def _time(value: Any) -> str | None:
    return value if isinstance(value, str) and _TIME.match(value) else None


def _existing(memories: Memories, user_id: str) -> dict[str, dict[str, Any]]:
    rows = memories.store.query(
        "SELECT id, content, kind, tags, pinned FROM memories WHERE user_id = ? AND scope = 'long_term'",
        [user_id],
    )
    return {row["id"]: row for row in rows}


def _taken_elsewhere(memories: Memories, user_id: str, ids: list[str]) -> set[str]:
    """Ids that belong to another user (memory ids are unique across users): those lines get new ids."""
    taken: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = memories.store.query(
            f"SELECT id FROM memories WHERE user_id != ? AND id IN ({','.join('?' * len(chunk))})",
            [user_id, *chunk],
        )
        taken.update(row["id"] for row in rows)
    return taken


def _recognise(entries: list[_Entry], existing: dict[str, dict[str, Any]], taken: set[str]) -> list[_Entry]:
    """Merge what needs no embedding (same id, same normalised text); returns the lines left to compare."""
    by_text: dict[tuple[str, str], str | _Entry] = {
        (row["kind"], normalise_for_match(row["content"])): memory_id for memory_id, row in existing.items()
    }
    by_id: dict[str, str | _Entry] = {memory_id: memory_id for memory_id in existing}
    pending: list[_Entry] = []
    for entry in entries:
        if entry.memory_id in taken:
            entry.memory_id = None
        target = by_id.get(entry.memory_id or "") or by_text.get((entry.kind, entry.norm))
        if target is not None:
            entry.into = target
            continue
        by_text[(entry.kind, entry.norm)] = entry
        if entry.memory_id:
            by_id[entry.memory_id] = entry
        pending.append(entry)
    return pending


class _Pool:
    """The vectors a line of one kind is compared with (the user's memories, then accepted lines), in a
    matrix that grows by doubling, with who owns each row."""

    def __init__(self) -> None:
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.owners: list[str | _Entry] = []

    def add(self, vectors: np.ndarray, owners: list[str | _Entry]) -> None:
        if not owners:
            return
        size, need = len(self.owners), len(self.owners) + len(owners)
        if need > self.matrix.shape[0]:
            grown = np.zeros((max(need, 2 * self.matrix.shape[0], 256), vectors.shape[1]), dtype=np.float32)
            if size:
                grown[:size] = self.matrix[:size]
            self.matrix = grown
        self.matrix[size:need] = vectors
        self.owners.extend(owners)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine similarity of each of `vectors` (rows) with every pooled vector (columns)."""
        if not self.owners:
            return np.zeros((len(vectors), 0), dtype=np.float32)
        return vectors @ self.matrix[: len(self.owners)].T


def _existing_pools(memories: Memories, user_id: str, existing: dict[str, dict[str, Any]],
                    kinds: set[str]) -> dict[str, _Pool]:
    """Per kind, the user's memory vectors: read back from the index where we hold it, else embedded."""
    wanted = {memory_id: row for memory_id, row in existing.items() if row["kind"] in kinds}
    if not wanted:
        return {}
    stored = memories.indexer.stored_vectors(user_id, "memories")
    missing = [memory_id for memory_id in wanted if memory_id not in stored]
    for start in range(0, len(missing), _BATCH):
        chunk = missing[start : start + _BATCH]
        stored.update(zip(chunk, memories.indexer.embedder.embed([wanted[i]["content"] for i in chunk]), strict=True))
    pools: dict[str, _Pool] = {}
    for kind in kinds:
        ids: list[str | _Entry] = [memory_id for memory_id, row in wanted.items() if row["kind"] == kind]
        if ids:
            pools[kind] = _Pool()
            pools[kind].add(np.asarray([stored[str(i)] for i in ids], dtype=np.float32), ids)
    return pools


def _merge_near(pool: _Pool, batch: list[_Entry], vectors: np.ndarray) -> None:
    """Merge each line of one kind into its nearest pooled memory or earlier line in this batch when the
    similarity reaches `MERGE_SIMILARITY`; the lines left are accepted into the pool."""
    against_pool = pool.scores(vectors)
    within = vectors @ vectors.T
    kept: list[int] = []
    for i, entry in enumerate(batch):
        best, target = MERGE_SIMILARITY, None
        if against_pool.shape[1]:
            j = int(against_pool[i].argmax())
            if against_pool[i, j] >= best:
                best, target = float(against_pool[i, j]), pool.owners[j]
        if kept:
            k = int(within[i, kept].argmax())
            if within[i, kept[k]] >= best:
                target = batch[kept[k]]
        entry.into = target
        if target is None:
            kept.append(i)
    pool.add(vectors[kept], [batch[i] for i in kept])


def _root(entry: _Entry) -> str | _Entry:
    target: str | _Entry = entry
    while isinstance(target, _Entry) and target.into is not None:
        target = target.into
    return target


def _write(memories: Memories, user_id: str, entries: list[_Entry],
           existing: dict[str, dict[str, Any]], report: ImportReport) -> None:
    added = [e for e in entries if e.into is None]
    for entry in added:
        entry.memory_id = entry.memory_id or secrets.token_hex(12)
    changes: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.into is None:
            continue
        report.merged += 1
        target = _root(entry)
        if isinstance(target, _Entry):
            target.tags = merge_tags(target.tags, entry.tags)
            target.pinned = target.pinned or entry.pinned
            continue
        row = existing[target]
        state = changes.setdefault(target, {"tags": json.loads(row["tags"] or "[]"), "pinned": bool(row["pinned"])})
        state["tags"] = merge_tags(state["tags"], entry.tags)
        state["pinned"] = state["pinned"] or entry.pinned
    now = now_iso()
    with memories.store.write() as db:
        for memory_id, state in changes.items():
            row = existing[memory_id]
            if state["tags"] == json.loads(row["tags"] or "[]") and state["pinned"] == bool(row["pinned"]):
                continue
            db.table("memories").update(memory_id, {"tags": json.dumps(state["tags"]),
                                                    "pinned": int(state["pinned"]), "updated_at": now})
    for start in range(0, len(added), 500):
        chunk = added[start : start + 500]
        with memories.store.write() as db:
            db.table("memories").insert_all(
                [{"id": e.memory_id, "user_id": user_id, "session_id": None, "content": e.content, "kind": e.kind,
                  "scope": "long_term", "tags": json.dumps(e.tags), "pinned": int(e.pinned),
                  "use_count": e.use_count, "last_used_at": e.last_used_at, "replaces": e.replaces,
                  "created_at": e.created_at, "updated_at": e.updated_at, **scope_columns(e.content, e.kind, None)}
                 for e in chunk],
            )
            for e in chunk:
                assert e.memory_id is not None
                memories.indexer.enqueue(db, user_id, "memories", e.memory_id, "upsert", e.content)
        memories.indexer.index_embedded(
            user_id, "memories",
            {e.memory_id: (e.content, [float(x) for x in e.vector]) for e in chunk if e.memory_id},
        )
        report.added += len(chunk)

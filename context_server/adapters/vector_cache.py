"""Exact in-process copies of the collections in use, so a query skips Chroma's fixed cost.

Every query to the embedded Chroma costs about 2 ms however small the collection (2.1 ms for one item,
2.6 ms for 1,250, measured on 2 cores), and each generation makes two of them (its styles, its reference).
A query over an in-process copy of the same vectors takes 0.2-0.6 ms (1,250-2,500 items). So `VectorIndex`
keeps, per collection, a normalised float32 matrix of its vectors and answers plain queries (no `where`
filter) from it, exactly (brute force: no approximation, unlike HNSW).

Kept in step, never guessed:

- the matrix is built from Chroma itself (`VectorIndex.load_wanted`, on the index's maintenance thread,
  never on a request): a query that finds no matrix goes to Chroma and marks the collection wanted (the
  stdio user's styles and images are wanted from the start: `Indexer.copy_early`);
- every write that goes through `VectorIndex` (upsert, delete, reset, discard) is applied to the matrix or
  drops it. Only the process holding the index lock writes the embedded Chroma, so these are all the writes
  there are. A write during a load bumps the collection's epoch and the stale load is thrown away;
- not used with `CHROMA_URL`: another server process may write that Chroma.

Memory: 4 bytes per dimension per vector (1.5 KB for all-MiniLM-L6-v2), up to `max_bytes` in all
(`CONTEXT_SERVER_VECTOR_CACHE_MB`). When a new collection does not fit, the copies queried least recently
make room, but only those idle for `EVICT_IDLE_SECONDS`: an HTTP server with more active users than the
budget holds keeps the copies it has rather than reloading in turn; a collection that finds no room is
served by Chroma and asked for again after that pause. A collection bigger than the whole budget is never
copied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["VectorCache"]

log = logging.getLogger(__name__)

#: A copy queried within this many seconds is never evicted to make room for another; a collection that
#: found no room is not read again before this long either.
EVICT_IDLE_SECONDS = 60.0


def _normalised(vectors: Any) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = matrix / norms
    return unit


@dataclass(frozen=True)
class _Entry:
    """One collection's vectors. Immutable: a write builds a new entry, so readers need no lock."""

    ids: tuple[str, ...]
    rows: dict[str, int]
    matrix: np.ndarray

    @classmethod
    def of(cls, ids: Sequence[str], matrix: np.ndarray) -> _Entry:
        return cls(tuple(ids), {item_id: row for row, item_id in enumerate(ids)}, matrix)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes)

    def upserted(self, ids: Sequence[str], vectors: np.ndarray) -> _Entry:
        matrix = self.matrix.copy()
        new_ids = list(self.ids)
        appended: list[np.ndarray] = []
        for item_id, vector in zip(ids, vectors, strict=True):
            row = self.rows.get(item_id)
            if row is not None:
                matrix[row] = vector
            else:
                new_ids.append(item_id)
                appended.append(vector)
        if appended:
            matrix = np.vstack([matrix, np.stack(appended)]) if len(matrix) else np.stack(appended)
        return _Entry.of(new_ids, matrix)

    def without(self, ids: Sequence[str]) -> _Entry:
        gone = {self.rows[i] for i in ids if i in self.rows}
        if not gone:
            return self
        keep = [row for row in range(len(self.ids)) if row not in gone]
        return _Entry.of([self.ids[row] for row in keep], self.matrix[keep])


class VectorCache:
    """Per-collection matrices within a byte budget; see the module docstring for how they stay exact."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._epochs: dict[str, int] = {}
        self._wanted: dict[str, None] = {}  # insertion-ordered set: first asked, first loaded
        self._refused: set[str] = set()  # bigger than the whole budget
        self._no_room_until: dict[str, float] = {}  # found no room: not read again before then
        self._used: dict[str, float] = {}  # when each copy last answered a query
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def cached(self, name: str) -> bool:
        return name in self._entries

    def query(self, name: str, vector: Sequence[float], limit: int,
              ids: Sequence[str] | None = None) -> list[tuple[str, float]] | None:
        """The `limit` most similar items as (id, cosine similarity), best first; None when this collection
        has no matrix (the caller asks Chroma, and the collection is loaded later)."""
        entry = self._entries.get(name)
        if entry is None:
            self.want(name)
            return None
        self._used[name] = self._clock()
        if ids is not None:
            rows = np.fromiter((entry.rows[i] for i in dict.fromkeys(ids) if i in entry.rows), dtype=np.intp)
        else:
            rows = None
        matrix = entry.matrix if rows is None else entry.matrix[rows]
        if limit <= 0 or len(matrix) == 0:
            return []
        # einsum, not `matrix @ vector`: NumPy hands that to OpenBLAS, whose worker threads then spin on
        # both cores for a while after each call and halved the embedder's speed (5.9 -> 10.4 ms a prompt,
        # measured in the 100k enrichment run). einsum's own loop stays on this thread (0.24 ms at 2,500).
        scores = np.einsum("ij,j->i", matrix, _normalised(vector)[0])
        if limit < len(scores):
            top = np.argpartition(-scores, limit - 1)[:limit]
            top = top[np.argsort(-scores[top], kind="stable")]
        else:
            top = np.argsort(-scores, kind="stable")
        picked = top if rows is None else rows[top]
        return [(entry.ids[int(row)], float(scores[int(i)])) for row, i in zip(picked, top, strict=True)]

    # --- keeping in step (called by VectorIndex after each write it makes) -------------------------------

    def upserted(self, name: str, ids: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        with self._lock:
            self._bump(name)
            entry = self._entries.get(name)
            if entry is not None:
                try:
                    updated = entry.upserted(ids, _normalised(vectors))
                except ValueError:  # vectors of another width than the copy's: drop it rather than guess
                    log.warning("vector copy of %s does not match a write; reloading it from Chroma", name)
                    self._drop(name)
                    self._wanted[name] = None
                    return
                self._replace(name, updated)
                if self._bytes > self.max_bytes and not self._make_room(0, keep=name):
                    self._drop(name)  # grew past the budget: Chroma serves it from now on
                    if updated.nbytes > self.max_bytes:
                        self._refused.add(name)
                    else:
                        self._no_room_until[name] = self._clock() + EVICT_IDLE_SECONDS

    def deleted(self, name: str, ids: Sequence[str]) -> None:
        with self._lock:
            self._bump(name)
            entry = self._entries.get(name)
            if entry is not None:
                self._replace(name, entry.without(ids))

    def forget(self, names: Sequence[str] | None = None) -> None:
        """Drop these collections' matrices (all, when None): after a reset, a discard or a failed write."""
        with self._lock:
            everything = names is None
            if names is None:
                names = [*self._entries, *self._epochs, *self._wanted]
            for name in names:
                self._bump(name)  # never reset: a load that began before this must not be installed after it
                self._drop(name)
            if everything:
                self._wanted.clear()
                self._refused.clear()
                self._no_room_until.clear()

    # --- loading (the index's maintenance thread) -------------------------------------------------------

    def want(self, name: str) -> None:
        """Load this collection at the next `VectorIndex.load_wanted`, unless it is loaded or too big."""
        with self._lock:
            if name in self._refused or name in self._entries:
                return
            if self._no_room_until.get(name, 0.0) > self._clock():
                return
            self._no_room_until.pop(name, None)
            self._wanted[name] = None

    def wanted(self) -> list[str]:
        with self._lock:
            return list(self._wanted)

    def epoch(self, name: str) -> int:
        with self._lock:
            return self._epochs.get(name, 0)

    def install(self, name: str, epoch: int, ids: Sequence[str], vectors: Any) -> bool:
        """Keep a collection's vectors as read from Chroma at `epoch`. False (and still wanted) when a write
        came in meanwhile; False (and never asked for again) when it does not fit the budget; False (until a
        query asks again) when the vectors do not match the ids."""
        try:
            matrix = _normalised(vectors) if len(ids) else np.zeros((0, 0), np.float32)
        except ValueError:  # ragged rows
            matrix = np.zeros((0, 0), np.float32)
        if len(ids) and (matrix.shape[0] != len(ids) or matrix.shape[1] == 0):
            # Chroma answered ids without their vectors (or too few): never keep a copy that is not exact.
            log.warning("vector copy of %s refused: %d ids, vectors %s", name, len(ids), matrix.shape)
            with self._lock:
                self._wanted.pop(name, None)  # asked for again by the next query, not at every poll
            return False
        entry = _Entry.of(list(ids), matrix)
        with self._lock:
            if self._epochs.get(name, 0) != epoch:
                return False
            self._wanted.pop(name, None)
            if entry.nbytes > self.max_bytes:
                self._refused.add(name)
                return False
            if not self._make_room(entry.nbytes, keep=name):
                self._no_room_until[name] = self._clock() + EVICT_IDLE_SECONDS
                return False
            self._replace(name, entry)
            self._used[name] = self._clock()
            return True

    def _make_room(self, nbytes: int, keep: str) -> bool:
        """Evict idle copies, least recently queried first, until `nbytes` more fit (with `keep`'s current
        size counted). False, evicting nothing, when the idle ones would not free enough."""
        need = self._bytes + nbytes - self.max_bytes
        if need <= 0:
            return True
        idle_before = self._clock() - EVICT_IDLE_SECONDS
        idle = sorted((self._used.get(n, 0.0), n) for n in self._entries
                      if n != keep and self._used.get(n, 0.0) <= idle_before)
        chosen: list[str] = []
        for _, candidate in idle:
            if need <= 0:
                break
            chosen.append(candidate)
            need -= self._entries[candidate].nbytes
        if need > 0:
            return False
        for candidate in chosen:
            self._drop(candidate)
        log.info("vector copies: evicted %d idle collection(s) to make room for %s", len(chosen), keep)
        return True

    def _drop(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        self._used.pop(name, None)
        if entry is not None:
            self._bytes -= entry.nbytes

    def _replace(self, name: str, entry: _Entry) -> None:
        old = self._entries.get(name)
        self._bytes += entry.nbytes - (old.nbytes if old is not None else 0)
        self._entries[name] = entry

    def _bump(self, name: str) -> None:
        self._epochs[name] = self._epochs.get(name, 0) + 1

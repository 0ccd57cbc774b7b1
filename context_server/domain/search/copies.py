"""Scheduling the in-process copies of the vector collections in use (`adapters/vector_cache.py`).

A query asks for its collection's copy (`VectorIndex.want`); the copying happens here, off the query's
path: on the warm-up loop between maintenance passes, and in `maintain`. `copy_early` asks ahead for the
stdio server's one user. Copies are loaded only under the work lock, never beside a drain or rebuild.
Changes `_copy_early`, and `_damaged` when Chroma fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from context_server.adapters.index import IndexDamaged
from context_server.domain.search.state import IndexState

__all__ = ["VectorCopies"]

log = logging.getLogger(__name__)


class VectorCopies(IndexState):
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

"""What `doctor` reports about the index: who holds it, what is pending, and whether it is healthy.

Reads only: it repairs nothing and never takes the index from its holder.
"""

from __future__ import annotations

from typing import Any

from context_server.adapters.index import IndexDamaged
from context_server.domain.search.state import INDEX_LAYOUT, IndexState

__all__ = ["IndexReport"]


class IndexReport(IndexState):
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

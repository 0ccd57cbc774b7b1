"""The audit trail: who called which tool, when, how long it took and whether it worked.

Only those five facts are kept. Arguments and results are never recorded: they carry prompts, memories
and URLs that belong to the user, and an audit table is read by operators.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from context_server.adapters.store import Store, now_iso

__all__ = ["Audit"]

log = logging.getLogger(__name__)

Outcome = Literal["ok", "error"]


class Audit:
    """`record` only queues the row; a writer thread commits what is queued, about every `delay` seconds while
    calls keep coming, one transaction (one fsync) for all of them. A tool's reply used to wait for its
    audit commit on the one writer connection (issue 15: about 9 ms each here, with `synchronous = FULL`),
    behind any other write. `recent` and `close` commit what is queued first. A process killed outright
    loses the rows of its last `delay` seconds, never a user's data."""

    def __init__(self, store: Store, *, delay: float = 0.05) -> None:
        self.store = store
        self.delay = delay
        self._pending: list[dict[str, Any]] = []
        self._guard = threading.Lock()  # the queue
        self._committing = threading.Lock()  # one flush at a time, so rows keep their order
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._closed = False

    def record(self, user_id: str, tool: str, outcome: Outcome, duration_ms: float) -> None:
        row = {"user_id": user_id, "tool": tool[:200], "outcome": outcome, "duration_ms": round(duration_ms, 3),
               "created_at": now_iso()}
        with self._guard:
            self._pending.append(row)
            closed = self._closed
            if not closed and self._writer is None:
                self._writer = threading.Thread(target=self._write_queued, name="audit-writer", daemon=True)
                self._writer.start()
        if closed:  # after close nobody writes in the background
            self.flush()
        elif not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Commit the queued rows now."""
        with self._committing:
            with self._guard:
                rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                with self.store.write() as db:
                    db.table("audit").insert_all(rows)
            except BaseException:
                with self._guard:  # kept, in order, for the next flush
                    self._pending[:0] = rows
                raise

    def close(self) -> None:
        """Commit what is queued and stop the writer (before the store closes)."""
        with self._guard:
            self._closed = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join(5)
        self.flush()

    def _write_queued(self) -> None:
        while True:
            self._wake.wait()
            if self._closed:
                return
            time.sleep(self.delay)  # the rows of the calls that finish meanwhile go in the same transaction
            self._wake.clear()
            if self._closed:  # `close` set the event during the sleep, and it was just cleared: stop now, or
                return  # the next wait never ends and `close` waits 5 s for this thread (then flushes itself)
            try:
                self.flush()
            except Exception:  # the audit must never stop: the rows stay queued for the next pass
                log.exception("could not write the audit rows")

    def recent(self, user_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; every user's calls when `user_id` is None (for operators, never exposed as a tool)."""
        self.flush()
        if user_id is None:
            return self.store.query("select * from audit order by id desc limit ?", [limit])
        return self.store.query("select * from audit where user_id = ? order by id desc limit ?", [user_id, limit])

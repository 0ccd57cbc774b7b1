"""The audit trail: who called which tool, when, how long it took and whether it worked.

Only those five facts are kept. Arguments and results are never recorded: they carry prompts, memories
and URLs that belong to the user, and an audit table is read by operators.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from context_server.adapters.store import Store, now_iso

__all__ = ["Audit"]

Outcome = Literal["ok", "error"]


class Audit:
    """Rows are written by group commit: each tool call adds one, and the rows that arrive while a thread is
    committing go in that thread's next transaction, one fsync for all of them. One transaction a call put
    every call's reply behind every other call's audit commit on the one writer connection (issue 15: about
    9 ms each here, with `synchronous = FULL`). A row is in the table when `record` returns, unless another
    thread was already writing, which writes it next; a process killed at that instant loses those rows."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[dict[str, Any]] = []
        self._guard = threading.Lock()
        self._writing = False

    def record(self, user_id: str, tool: str, outcome: Outcome, duration_ms: float) -> None:
        row = {"user_id": user_id, "tool": tool[:200], "outcome": outcome, "duration_ms": round(duration_ms, 3),
               "created_at": now_iso()}
        with self._guard:
            self._pending.append(row)
            if self._writing:
                return  # the thread committing now writes it next
            self._writing = True
        try:
            while True:
                with self._guard:
                    rows, self._pending = self._pending, []
                    if not rows:
                        self._writing = False
                        return
                with self.store.write() as db:
                    db.table("audit").insert_all(rows)
        except BaseException:
            with self._guard:
                self._writing = False
            raise

    def recent(self, user_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; every user's calls when `user_id` is None (for operators, never exposed as a tool)."""
        if user_id is None:
            return self.store.query("select * from audit order by id desc limit ?", [limit])
        return self.store.query("select * from audit where user_id = ? order by id desc limit ?", [user_id, limit])

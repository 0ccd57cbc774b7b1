"""The audit trail: who called which tool, when, how long it took and whether it worked.

Only those five facts are kept. Arguments and results are never recorded: they carry prompts, memories
and URLs that belong to the user, and an audit table is read by operators.
"""

from __future__ import annotations

from typing import Any, Literal

from context_server.adapters.store import Store, now_iso

__all__ = ["Audit"]

Outcome = Literal["ok", "error"]


class Audit:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, user_id: str, tool: str, outcome: Outcome, duration_ms: float) -> None:
        with self.store.write() as db:
            db.table("audit").insert({"user_id": user_id, "tool": tool[:200], "outcome": outcome,
                                      "duration_ms": round(duration_ms, 3), "created_at": now_iso()})

    def recent(self, user_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; every user's calls when `user_id` is None (for operators, never exposed as a tool)."""
        if user_id is None:
            return self.store.query("select * from audit order by id desc limit ?", [limit])
        return self.store.query("select * from audit where user_id = ? order by id desc limit ?", [user_id, limit])

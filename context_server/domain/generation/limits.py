"""Per-user limits on generations: a sliding-window rate limit and the profile's daily budget."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from datetime import UTC, datetime

from context_server.adapters.store import Store
from context_server.errors import LimitExceeded

__all__ = ["RateLimiter", "check_budget", "spent_since"]


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: dict[str, deque[float]] = defaultdict(deque)

    def check(self, user_id: str) -> None:
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        calls = self._calls[user_id]
        while calls and calls[0] < now - 60:
            calls.popleft()
        if len(calls) >= self.per_minute:
            wait = int(60 - (now - calls[0])) + 1
            raise LimitExceeded(
                f"rate limit: at most {self.per_minute} generations a minute; try again in {wait} s"
            )
        calls.append(now)


def spent_since(store: Store, user_id: str, since_iso: str) -> float:
    row = store.one(
        "select coalesce(sum(cost_usd), 0) as spent from usage where user_id = ? and created_at >= ?",
        [user_id, since_iso],
    )
    return float(row["spent"]) if row else 0.0


def start_of_day() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000000Z")


def check_budget(store: Store, user_id: str, daily_budget: float | None, cost: float) -> None:
    """Refuse a paid call that would take today's spending past the profile's daily budget."""
    if cost <= 0 or daily_budget is None:
        return
    spent = spent_since(store, user_id, start_of_day())
    if spent + cost > daily_budget + 1e-9:
        raise LimitExceeded(
            f"daily budget reached: ${spent:.2f} of ${daily_budget:.2f} spent today (UTC) and this call costs "
            f"about ${cost:.3f}; raise daily_budget_usd with update_profile or use the free placeholder provider"
        )

"""The `usage` table: one row per completed generation (provider, model, cost), summed for `get_usage` and
for the daily budget (`limits.check_budget`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from context_server.adapters.store import Store
from context_server.domain.generation.limits import spent_since, start_of_day
from context_server.domain.profile import Profiles
from context_server.errors import InvalidInput

__all__ = ["UsageLedger"]


class UsageLedger:
    def __init__(self, store: Store, profiles: Profiles) -> None:
        self.store = store
        self.profiles = profiles

    @staticmethod
    def record(db: Any, user_id: str, job_id: str, *, provider: str | None, model: str | None, cost_usd: float,
               created_at: str) -> None:
        """Inside the transaction that records the image (`db`), so a generation is counted exactly once."""
        db.table("usage").insert({"user_id": user_id, "job_id": job_id, "provider": provider, "model": model,
                                  "cost_usd": cost_usd, "created_at": created_at})

    def summary(self, user_id: str, period: str) -> dict[str, Any]:
        """Generations and cost per provider since the start of the day or month (UTC), and the budget left."""
        if period not in ("day", "month"):
            raise InvalidInput("period must be 'day' or 'month'")
        since = start_of_day() if period == "day" else datetime.now(UTC).strftime("%Y-%m-01T00:00:00.000000Z")
        rows = self.store.query(
            "select provider, count(*) as generations, coalesce(sum(cost_usd), 0) as cost_usd from usage "
            "where user_id = ? and created_at >= ? group by provider order by provider",
            [user_id, since],
        )
        budget = self.profiles.get(user_id)["daily_budget_usd"]
        spent_today = spent_since(self.store, user_id, start_of_day())
        return {
            "period": period,
            "since": since,
            "providers": [{"provider": r["provider"], "generations": r["generations"],
                           "cost_usd": round(r["cost_usd"], 4)} for r in rows],
            "total_cost_usd": round(sum(r["cost_usd"] for r in rows), 4),
            "daily_budget_usd": budget,
            "budget_left_usd": None if budget is None else round(max(0.0, budget - spent_today), 4),
        }

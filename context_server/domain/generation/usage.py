"""The `usage` table: one row per completed generation (provider, model, cost), summed for `get_usage` and
for the daily budget (`limits.check_budget`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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

    def daily(self, user_id: str, days: int = 14, *, today: datetime | None = None) -> list[dict[str, Any]]:
        """One entry per UTC day of the last `days` (oldest first), days without generations included as 0."""
        if not 1 <= days <= 366:
            raise InvalidInput(f"days must be between 1 and 366, got {days}")
        end = (today or datetime.now(UTC)).date()
        first = end - timedelta(days=days - 1)
        rows = self.store.query(
            "select substr(created_at, 1, 10) as day, count(*) as generations, coalesce(sum(cost_usd), 0) as cost_usd "
            "from usage where user_id = ? and created_at >= ? group by day",
            [user_id, first.isoformat()],
        )
        found = {r["day"]: r for r in rows}
        out = []
        for i in range(days):
            day = (first + timedelta(days=i)).isoformat()
            row = found.get(day)
            out.append({"day": day, "generations": int(row["generations"]) if row else 0,
                        "cost_usd": round(float(row["cost_usd"]), 4) if row else 0.0})
        return out

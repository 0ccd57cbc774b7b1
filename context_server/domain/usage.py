"""What a user's generations cost, day by day (the gallery's usage chart; `App.usage` answers get_usage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from context_server.adapters.store import Store
from context_server.errors import InvalidInput

__all__ = ["daily_usage"]


def daily_usage(store: Store, user_id: str, days: int = 14, *, today: datetime | None = None) -> list[dict[str, Any]]:
    """One entry per UTC day of the last `days` (oldest first), days without generations included as 0."""
    if not 1 <= days <= 366:
        raise InvalidInput(f"days must be between 1 and 366, got {days}")
    end = (today or datetime.now(UTC)).date()
    first = end - timedelta(days=days - 1)
    rows = store.query(
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

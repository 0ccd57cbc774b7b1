"""The structured per-user profile: defaults that fill in whatever a generation call leaves unspecified."""

from __future__ import annotations

from typing import Any, TypedDict, cast

from context_server.adapters.providers.base import ASPECT_RATIOS
from context_server.adapters.store import Store, now_iso
from context_server.errors import InvalidInput

__all__ = ["PROFILE_FIELDS", "STYLE_STRENGTHS", "ProfileRow", "Profiles"]

STYLE_STRENGTHS = ("off", "light", "strong")
PROFILE_FIELDS = (
    "default_provider",
    "default_model",
    "default_aspect_ratio",
    "default_negative_prompt",
    "style_strength",
    "daily_budget_usd",
)


class ProfileRow(TypedDict):
    """A user's profile as `Profiles` returns it: every field, a default where the user set none."""

    default_provider: str | None
    default_model: str | None
    default_aspect_ratio: str | None
    default_negative_prompt: str | None
    style_strength: str
    daily_budget_usd: float | None


DEFAULTS: ProfileRow = {
    "default_provider": None,
    "default_model": None,
    "default_aspect_ratio": None,
    "default_negative_prompt": None,
    "style_strength": "light",
    "daily_budget_usd": None,
}


class Profiles:
    def __init__(self, store: Store, provider_names: list[str]) -> None:
        self.store = store
        self.provider_names = provider_names

    def get(self, user_id: str) -> ProfileRow:
        row = self.store.one("select * from profiles where user_id = ?", [user_id]) or {}
        return cast("ProfileRow", {key: row[key] if row.get(key) is not None else DEFAULTS.get(key)
                                   for key in PROFILE_FIELDS})

    def update(self, user_id: str, changes: dict[str, Any]) -> ProfileRow:
        """Set the given fields; an empty string or null clears a field back to its default."""
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in PROFILE_FIELDS:
                raise InvalidInput(f"unknown profile field {key!r}; fields are {', '.join(PROFILE_FIELDS)}")
            if value == "" or value is None:
                clean[key] = None
                continue
            if key == "default_provider" and value not in self.provider_names:
                raise InvalidInput(f"default_provider {value!r} is unknown; use one of {', '.join(self.provider_names)}")
            if key == "default_aspect_ratio" and value not in ASPECT_RATIOS:
                raise InvalidInput(f"default_aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
            if key == "style_strength" and value not in STYLE_STRENGTHS:
                raise InvalidInput(f"style_strength must be one of {', '.join(STYLE_STRENGTHS)}")
            if key == "daily_budget_usd":
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise InvalidInput("daily_budget_usd must be a number of dollars, 0 or more")
                value = float(value)
            if key in ("default_model", "default_negative_prompt") and len(str(value)) > 1000:
                raise InvalidInput(f"{key} is at most 1000 characters")
            clean[key] = value
        with self.store.write() as db:
            existing = db["profiles"].count_where("user_id = ?", [user_id])
            if existing:
                if clean:
                    sets = ", ".join(f"{k} = ?" for k in clean)
                    db.execute(f"update profiles set {sets}, updated_at = ? where user_id = ?",
                               [*clean.values(), now_iso(), user_id])
            else:
                db.table("profiles").insert({"user_id": user_id, **clean, "updated_at": now_iso()})
        return self.get(user_id)

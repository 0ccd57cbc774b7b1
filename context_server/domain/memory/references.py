"""Resolving references to earlier images: an id, "the previous one", or "my last spaceship image".

- An image id (32 hex chars, or any exact id the user owns) resolves to that image.
- Session words ("the previous one", "that image", "it", "the last one") resolve to the last image made
  in this session.
- "my last X image" / "the X picture from before" resolves to the most recent of the user's images whose
  prompt means X: candidates come from the image index ranked by meaning; among those within
  `RELATIVE_WINDOW` of the best match (and at least `MIN_SCORE`), the newest wins. Other candidates are
  returned as `alternatives`. Only the caller's own, non-incognito images are ever candidates.

Measured with all-MiniLM-L6-v2: "spaceship" scores 0.72 against "a spaceship over the ocean", 0.51
against "a red spaceship landing on mars" and "an alien starship battle", 0.41 against "a rocket
launching" and at most 0.28 against unrelated prompts; "red car" scores 0.82 against "a sports car in
red" and 0.53 against the red spaceship. A window of 0.25 under the best match keeps the three spaceship
images together (the newest wins) while the car query keeps only the car.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from context_server.adapters.store import Store
from context_server.domain.sessions import Session
from context_server.errors import InvalidInput, NotFound

__all__ = ["MIN_SCORE", "Reference", "References", "reference_subject"]

SearchFn = Callable[[str, str, int], list[tuple[str, float]]]
"""(user_id, query, limit) → [(image_id, score 0..1)], best first."""

MIN_SCORE = 0.35
RELATIVE_WINDOW = 0.25
_ID = re.compile(r"^[0-9a-f]{32}$")
_SESSION_WORDS = re.compile(
    r"^(?:the |that |this )?(?:previous|last|latest|same|current)?\s*(?:one|image|picture|pic|photo|it)?$"
)
_STOP = re.compile(
    r"\b(?:my|the|a|an|last|latest|previous|recent|most|earlier|before|from|of|image|images|picture|"
    r"pictures|pic|photo|photos|one|that|this|use|again|i|made|generated|created)\b"
)


def reference_subject(words: str) -> str:
    """What "my last X image" is about (X), or "" for ids, session words and "my last image"."""
    text = " ".join(words.strip().lower().split())
    if not text or _ID.match(text) or _SESSION_WORDS.match(text):
        return ""
    return " ".join(_STOP.sub(" ", text).split())


@dataclass
class Reference:
    image_id: str
    prompt: str
    score: float
    row: dict[str, Any]
    alternatives: list[dict[str, Any]] = field(default_factory=list)


class References:
    def __init__(self, store: Store, search: SearchFn) -> None:
        self.store = store
        self.search = search

    def _row(self, user_id: str, image_id: str) -> dict[str, Any] | None:
        return self.store.one("select * from images where id = ? and user_id = ?", [image_id, user_id])

    def _rows(self, user_id: str, image_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The user's rows among `image_ids`, by id, in one query (ids of other users are never found)."""
        if not image_ids:
            return {}
        marks = ",".join("?" * len(image_ids))
        found = self.store.query(f"select * from images where +user_id = ? and id in ({marks})",
                                 [user_id, *image_ids])
        return {row["id"]: row for row in found}

    def resolve(self, user_id: str, session: Session, words: str) -> Reference:
        text = " ".join(words.strip().lower().split())
        if not text:
            raise InvalidInput("reference is empty; give an image id or words like 'the previous one'")
        row = self._row(user_id, words.strip())
        if row is not None:
            return Reference(row["id"], row["prompt"], 1.0, row)
        if _ID.match(text):
            raise NotFound(f"no image {words.strip()!r}")
        if _SESSION_WORDS.match(text):
            if session.last_image_id:
                row = self._row(user_id, session.last_image_id)
                if row is not None:
                    return Reference(row["id"], row["prompt"], 1.0, row)
            raise NotFound("there is no previous image in this session yet; give an image id or describe it "
                           "('my last spaceship image')")
        subject = reference_subject(words)
        if not subject:
            row = self.store.one("select * from images where user_id = ? and incognito = 0 "
                                 "order by created_at desc limit 1", [user_id])
            if row is None:
                raise NotFound("you have no images yet")
            return Reference(row["id"], row["prompt"], 1.0, row)
        hits = [(i, s) for i, s in self.search(user_id, subject, 20) if s >= MIN_SCORE]
        rows = self._rows(user_id, [i for i, _ in hits])
        hits = [(i, s) for i, s in hits if i in rows and not rows[i]["incognito"]]
        if not hits:
            raise NotFound(f"no image of yours matches {subject!r}; search_images lists what there is")
        best = hits[0][1]
        close = [(i, s) for i, s in hits if s >= best - RELATIVE_WINDOW]
        chosen_id, chosen_score = max(close, key=lambda h: rows[h[0]]["created_at"])
        chosen = rows[chosen_id]
        alternatives = [
            {"image_id": i, "prompt": rows[i]["prompt"], "score": round(s, 4), "created_at": rows[i]["created_at"]}
            for i, s in hits[:5] if i != chosen_id
        ]
        return Reference(chosen_id, chosen["prompt"], round(chosen_score, 4), chosen, alternatives)

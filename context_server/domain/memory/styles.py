"""Choosing which remembered styles a generation gets.

- Pinned styles apply to every generation (score 1.0).
- This session's styles apply to every generation in the session (score 1.0).
- Other style memories apply when they are about this kind of image: their similarity to the prompt
  must reach the strength's threshold (a style about logos stays out of a forest landscape). Among
  those, similarity ranks first, then recency and use count break near-ties.

`style_strength` sets how much is added: "light" takes at most 2 relevant styles at 0.28 similarity or
more, "strong" at most 5 at 0.20 or more; "off" adds none (not even pinned ones).

The thresholds come from measured all-MiniLM-L6-v2 similarities between style memories and prompts:
a style about logos scores 0.31-0.45 against logo prompts and 0.00-0.18 against landscapes, portraits
or cats; "landscapes should be muted watercolour" scores 0.38 against two landscape prompts and at most
0.19 against the rest. A known miss: "when drawing portraits use soft rim lighting" scores only 0.20
against "a portrait of an old fisherman" (the long instruction dilutes the subject), so it applies under
"strong" but not "light"; pin a style, or phrase it around its subject, to make it apply reliably.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from context_server.domain.memory.service import MemoryService
from context_server.models import AppliedStyle

__all__ = ["STRENGTHS", "StyleSelector"]


@dataclass(frozen=True)
class Strength:
    threshold: float
    max_relevant: int


STRENGTHS = {"light": Strength(0.28, 2), "strong": Strength(0.20, 5)}


class StyleSelector:
    def __init__(self, memory: MemoryService) -> None:
        self.memory = memory

    def styles_for(self, user_id: str, session_id: str, prompt: str, strength: str) -> list[AppliedStyle]:
        rule = STRENGTHS.get(strength)
        if rule is None:
            return []
        chosen: dict[str, AppliedStyle] = {}
        for memory in self.memory.pinned(user_id, "style", session_id):
            chosen[memory.memory_id] = AppliedStyle(memory_id=memory.memory_id, content=memory.content, score=1.0)
        session, _ = self.memory.list(user_id, kind="style", scope="session", session_id=session_id, limit=20)
        for memory in session:
            chosen.setdefault(memory.memory_id,
                              AppliedStyle(memory_id=memory.memory_id, content=memory.content, score=1.0))
        if not self._has_rankable_styles(user_id):
            return list(chosen.values())  # nothing to rank: never wait for the model for nothing
        candidates = [m for m in self.memory.search(user_id, prompt, limit=10, kind="style",
                                                    min_score=rule.threshold)
                      if m.memory_id not in chosen and (m.score or 0.0) >= rule.threshold]
        candidates.sort(key=lambda m: (round(m.score or 0.0, 2), math.log1p(m.use_count), m.updated_at),
                        reverse=True)
        for memory in candidates[: rule.max_relevant]:
            chosen[memory.memory_id] = AppliedStyle(memory_id=memory.memory_id, content=memory.content,
                                                    score=round(memory.score or 0.0, 4))
        return list(chosen.values())

    def _has_rankable_styles(self, user_id: str) -> bool:
        row = self.memory.store.one(
            "SELECT 1 AS x FROM memories WHERE user_id = ? AND kind = 'style' AND scope = 'long_term' "
            "AND pinned = 0 LIMIT 1", [user_id])
        return row is not None

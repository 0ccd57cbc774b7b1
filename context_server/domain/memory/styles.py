"""Choosing which remembered styles a generation gets, and how they change the prompt.

Every style memory knows when it applies (`scope.read_style`, stored at save time):

- pinned styles apply to every generation;
- this session's styles apply to every generation in the session;
- "always" styles (said as always / every image, or said with no subject) apply to every generation;
- a subject style ("For logos ...", applies_to="logos") applies when the prompt is about that subject, by
  the same subject matching as references (`lexicon.py`): an emblem or a wordmark is a logo, a mountain
  lake panorama a landscape, a hot dog stand is not an animal.

Negative styles ("never use neon colours") go to the negative prompt. Two applied styles that name
different media (watercolour vs flat vector, photorealistic vs line drawing) conflict: the more specific
one wins (a subject style over an always style; a pinned style is never left out) and the receipt lists
the other under `left_out`.

`style_strength`: "off" adds no style at all (not even pinned ones); "light" (the default) takes at most
3 subject styles, "strong" at most 8; pinned, session and always styles are not capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from context_server.domain.memory.lexicon import Analysis, lexicon
from context_server.domain.memory.rules import visibility_sql
from context_server.domain.memory.scope import ALWAYS, read_style
from context_server.domain.memory.service import Memories
from context_server.models import AppliedStyle, LeftOutStyle

__all__ = ["MEDIA", "STRENGTHS", "StyleChoice", "StyleSelector", "about_subject", "compose_prompt", "media_of"]


@dataclass(frozen=True)
class Strength:
    max_subject: int


STRENGTHS = {"light": Strength(3), "strong": Strength(8)}
_TIER = {"pinned": 4, "session": 3, "subject": 2, "always": 1}

#: Media and techniques: two styles naming different ones cannot both be followed.
MEDIA = {
    "watercolour": r"water-?colou?r",
    "oil painting": r"\boil(?:[- ]painting|s)?\b|\boil on canvas",
    "acrylic": r"\bacrylic",
    "gouache": r"\bgouache",
    "flat vector": r"\bvector\b|\bflat (?:design|illustration|colou?rs?|shapes?)",
    "photograph": r"photo-?real|\bphotograph|\b35 ?mm\b|\bfilm (?:photo|still)|\bdslr\b|\brealistic photo",
    "pixel art": r"\bpixel[- ]art\b|\b(?:8|16|32)-?bit\b",
    "pencil sketch": r"\bpencil\b|\bgraphite\b|\bsketch",
    "charcoal": r"\bcharcoal drawing|\bcharcoal sketch",
    "line drawing": r"\bline[- ](?:drawing|art|work)s?\b|\bink (?:drawing|lines?)\b",
    "3d render": r"\b3d\b|\blow-?poly\b|\bcgi\b|\bclay ?render|\bblender\b",
    "anime": r"\banime\b|\bmanga\b",
    "cartoon": r"\bcartoon",
    "ukiyo-e": r"ukiyo-?e|\bwoodblock",
    "children's book illustration": r"children'?s book illustration",
}
_MEDIA = {name: re.compile(pattern) for name, pattern in MEDIA.items()}


def media_of(text: str) -> frozenset[str]:
    low = text.lower()
    return frozenset(name for name, pattern in _MEDIA.items() if pattern.search(low))


@lru_cache(maxsize=4096)
def _subject_parts(applies_to: str) -> tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]:
    """'weapons and props' → ((weapon senses, ()), (prop senses, ())); an unknown subject keeps its words."""
    lex = lexicon()
    parts: list[tuple[tuple[int, ...], tuple[str, ...]]] = []
    for part in re.split(r"\s*(?:,|\band\b|\bor\b|&|/)\s*", applies_to.lower()):
        units = lex.units(part)
        known = [u for u in units if u.concepts]
        if known:
            parts.append((known[-1].concepts, ()))
        else:
            words = tuple(u.text for u in units if len(u.text) > 2)
            if words:
                parts.append(((), words))
    return tuple(parts)


def about_subject(analysis: Analysis, applies_to: str) -> bool:
    """Is a prompt (analysed) about this subject? The head thing of any part of it must be in the prompt."""
    lex = lexicon()
    for senses, words in _subject_parts(applies_to):
        if senses and lex.about(analysis, senses):
            return True
        if words and all(analysis.has_word(w) or analysis.has_word(lex.lemma(w)) for w in words):
            return True
    return False


@dataclass
class StyleChoice:
    styles: list[AppliedStyle] = field(default_factory=list)
    left_out: list[LeftOutStyle] = field(default_factory=list)

    @property
    def positive(self) -> list[AppliedStyle]:
        return [s for s in self.styles if s.placement == "prompt"]

    @property
    def negative(self) -> list[AppliedStyle]:
        return [s for s in self.styles if s.placement == "negative"]


def compose_prompt(prompt: str, phrases: list[str]) -> str:
    """'a logo for my bakery.' + ['flat vector art'] → 'a logo for my bakery, flat vector art'."""
    if not phrases:
        return prompt
    base = prompt.rstrip().rstrip(".,;:!? ")
    parts = [base, *(p.strip().strip(".,;: ") for p in phrases)]
    return ", ".join(p for p in parts if p)


def compose_negative(negative: str | None, phrases: list[str]) -> str | None:
    parts = [p.strip() for p in (negative or "").split(",") if p.strip()]
    seen = {p.lower() for p in parts}
    for phrase in phrases:
        for item in (p.strip() for p in phrase.split(",")):
            if item and item.lower() not in seen:
                parts.append(item)
                seen.add(item.lower())
    return ", ".join(parts) or None


class StyleSelector:
    def __init__(self, memories: Memories) -> None:
        self.memories = memories

    def styles_for(self, user_id: str, session_id: str, prompt: str, strength: str) -> StyleChoice:
        rule = STRENGTHS.get(strength)
        if rule is None:
            return StyleChoice()
        params: list[str] = [user_id]
        visible = visibility_sql(None, session_id, params)
        rows = self.memories.store.query(
            "SELECT id, content, scope, pinned, applies_to, placement, prompt_phrase, updated_at FROM memories "
            f"WHERE user_id = ? AND kind = 'style' AND {visible} ORDER BY pinned DESC, updated_at DESC, id DESC",
            params)
        if not rows:
            return StyleChoice()
        analysis = lexicon().analyse(prompt)
        picked: list[tuple[int, AppliedStyle]] = []
        subject_count = 0
        for row in rows:
            scope = read_style(row["content"], row["applies_to"])
            applies_to = row["applies_to"] or scope.applies_to
            placement = row["placement"] or scope.placement
            phrase = row["prompt_phrase"] or scope.phrase
            if row["pinned"]:
                tier, why = "pinned", "pinned"
            elif row["scope"] == "session":
                tier, why = "session", "this session's style"
            elif applies_to == ALWAYS:
                tier, why = "always", "applies to every image"
            elif about_subject(analysis, applies_to):
                if subject_count >= rule.max_subject:
                    continue
                subject_count += 1
                tier, why = "subject", f"the prompt is about {applies_to}"
            else:
                continue
            picked.append((_TIER[tier], AppliedStyle(
                memory_id=row["id"], content=row["content"], score=1.0, applies_to=applies_to, why=why,
                placement="negative" if placement == "negative" else "prompt", phrase=phrase)))
        return _resolve_conflicts(picked)


def _resolve_conflicts(picked: list[tuple[int, AppliedStyle]]) -> StyleChoice:
    """A style whose medium differs from a more specific applied style's is left out (see the docstring)."""
    choice = StyleChoice()
    kept: list[tuple[int, AppliedStyle, frozenset[str]]] = []
    for tier, style in sorted(picked, key=lambda p: -p[0]):  # stable: newer first within a tier
        media = media_of(style.phrase) if style.placement == "prompt" else frozenset()
        rival = next((k for k in kept if media and k[2] and not (media & k[2]) and k[0] > tier and tier < 4), None)
        if rival is not None:
            choice.left_out.append(LeftOutStyle(
                memory_id=style.memory_id, content=style.content,
                reason=f"conflicts with {rival[1].memory_id} ({', '.join(sorted(rival[2]))}, {rival[1].why}), "
                       f"which is more specific"))
            continue
        kept.append((tier, style, media))
    order = {id(style): i for i, (_, style) in enumerate(picked)}
    choice.styles = [s for _, s, _ in sorted(kept, key=lambda k: order[id(k[1])])]
    return choice

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
from typing import Any

from context_server.adapters.store import Store
from context_server.domain.memory.lexicon import Analysis, described_with_lexicon, lexicon
from context_server.domain.memory.rules import visibility_sql
from context_server.domain.memory.scope import ALWAYS, StyleScope, read_style, subject_keys, subject_parts
from context_server.models import AppliedStyle, LeftOutStyle

__all__ = ["MEDIA", "STRENGTHS", "StyleChoice", "StyleSelector", "about_subject", "compose_prompt", "fill_style_keys",
           "media_of", "prompt_keys"]


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


def about_subject(analysis: Analysis, applies_to: str) -> bool:
    """Is a prompt (analysed) about this subject? The head thing of any part of it must be in the prompt."""
    lex = lexicon()
    for senses, words in subject_parts(applies_to):
        if senses and lex.about(analysis, senses):
            return True
        if words and all(analysis.has_word(w) or analysis.has_word(lex.lemma(w)) for w in words):
            return True
    return False


def prompt_keys(analysis: Analysis) -> list[str]:
    """The `style_subjects` keys a prompt can match: every concept it is about and every word in it."""
    return [*(str(c) for c in analysis.concepts), *(f"w:{w}" for w in analysis.words)]


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
    """Reads only the styles that can apply: the general ones (pinned, this session's, "always") through a
    partial index, and the subject styles whose subject is among the prompt's concepts or words through
    `style_subjects` (migration m013). Styles stored before their keys were (`subject_keys` NULL) are read
    with the general ones and decided here, until the warm-up fills them in (`fill_style_keys`)."""

    _COLUMNS = "id, content, scope, pinned, applies_to, placement, prompt_phrase, updated_at, subject_keys"
    #: Word for word the condition of the partial index idx_memories_style_general (migration m013), which
    #: the query names: without statistics SQLite would pick the wider (user_id, kind, ...) index and
    #: read every style of the user.
    _GENERAL = ("kind = 'style' AND (pinned = 1 OR scope = 'session' OR applies_to = 'always' OR applies_to IS NULL "
                "OR subject_keys IS NULL)")

    def __init__(self, store: Store) -> None:
        self.store = store

    def styles_for(self, user_id: str, session_id: str, prompt: str, strength: str) -> StyleChoice:
        rule = STRENGTHS.get(strength)
        if rule is None:
            return StyleChoice()
        params: list[str] = [user_id]
        visible = visibility_sql(None, session_id, params)
        general = self.store.query(
            f"SELECT {self._COLUMNS} FROM memories INDEXED BY idx_memories_style_general "
            f"WHERE user_id = ? AND {self._GENERAL} AND {visible}", params)
        analysis = lexicon().analyse(prompt)
        picked: list[tuple[tuple[int, str, str], int, AppliedStyle]] = []
        for row in general:
            style = _read(row)
            if row["pinned"]:
                tier, why = "pinned", "pinned"
            elif row["scope"] == "session":
                tier, why = "session", "this session's style"
            elif style.applies_to == ALWAYS:
                tier, why = "always", "applies to every image"
            elif about_subject(analysis, style.applies_to):  # not yet keyed: decided here
                tier, why = "subject", f"the prompt is about {style.applies_to}"
            else:
                continue
            picked.append((_order(row), _TIER[tier], _applied(row, style, why)))
        subject = _TIER["subject"]
        for row in self._about(user_id, session_id, analysis, rule.max_subject):
            style = _read(row)
            picked.append((_order(row), subject, _applied(row, style, f"the prompt is about {style.applies_to}")))
        picked.sort(key=lambda p: p[0], reverse=True)  # pinned first, then newest first
        kept: list[tuple[int, AppliedStyle]] = []
        subjects = 0
        for _, level, applied in picked:  # the newest subject styles up to the strength's cap, wherever found
            subjects += level == subject
            if level != subject or subjects <= rule.max_subject:
                kept.append((level, applied))
        return _resolve_conflicts(kept)

    def _about(self, user_id: str, session_id: str, analysis: Analysis, wanted: int) -> list[dict[str, Any]]:
        """The newest keyed subject styles the prompt is about, at most `wanted`."""
        keys = prompt_keys(analysis)
        if not keys or wanted <= 0:
            return []
        found: list[dict[str, Any]] = []
        page, offset = max(8, wanted * 2), 0
        while len(found) < wanted:
            params: list[Any] = [user_id, *keys, user_id]
            visible = visibility_sql(None, session_id, params, column="m.")
            rows = self.store.query(
                f"SELECT {', '.join('m.' + c for c in self._COLUMNS.split(', '))} FROM memories m "
                f"WHERE m.id IN (SELECT memory_id FROM style_subjects WHERE user_id = ? "
                f"AND key IN ({','.join('?' * len(keys))})) AND +m.user_id = ? AND +m.kind = 'style' "
                f"AND NOT ({self._GENERAL}) AND {visible} "
                f"ORDER BY m.pinned DESC, m.updated_at DESC, m.id DESC LIMIT {page} OFFSET {offset}", params)
            # (+ keeps SQLite on the ids found, not on a scan of the user's styles.) A word key only says
            # the subject's first word is in the prompt: check the whole subject.
            found += [r for r in rows if about_subject(analysis, r["applies_to"])]
            if len(rows) < page:
                break
            offset += page
        return found[:wanted]


def _order(row: dict[str, Any]) -> tuple[int, str, str]:
    """Styles are considered pinned first, then newest (by updated_at, then id) first: sort descending."""
    return (int(row["pinned"] or 0), row["updated_at"] or "", row["id"])


def _read(row: dict[str, Any]) -> StyleScope:
    """A row's scope, as stored; read from its words when it was stored before scopes were."""
    if row["applies_to"] and row["placement"] and row["prompt_phrase"]:
        return StyleScope(row["applies_to"], row["placement"], row["prompt_phrase"])
    scope = read_style(row["content"], row["applies_to"])
    return StyleScope(row["applies_to"] or scope.applies_to, row["placement"] or scope.placement,
                      row["prompt_phrase"] or scope.phrase)


def _applied(row: dict[str, Any], style: StyleScope, why: str) -> AppliedStyle:
    return AppliedStyle(memory_id=row["id"], content=row["content"], score=1.0, applies_to=style.applies_to,
                        why=why, placement="negative" if style.placement == "negative" else "prompt",
                        phrase=style.phrase)


def fill_style_keys(store: Store, batch: int = 500) -> int:
    """Store the scope and `subject_keys` of styles saved before they were (or under another lexicon
    version); returns how many. Runs in the server's warm-up."""
    done = 0
    with described_with_lexicon(store, "style_keys_lexicon", "memories", "subject_keys", rows="kind = 'style'"):
        while rows := store.query("select id, user_id, content, applies_to, placement, prompt_phrase from memories "
                                  "where kind = 'style' and subject_keys is null limit ?", [batch]):
            with store.write() as db:
                for row in rows:
                    style = _read(row)
                    db.execute("update memories set applies_to = ?, placement = ?, prompt_phrase = ?, "
                               "subject_keys = ? where id = ? and user_id = ?",
                               [style.applies_to, style.placement, style.phrase, subject_keys(style.applies_to),
                                row["id"], row["user_id"]])
            done += len(rows)
    return done


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

"""When a style memory applies, where it goes, and the words the provider gets: read from what the user said.

`read_style(content)` → `StyleScope`:

- `applies_to`: "always" (said as always / every image / all my images, or nothing said about when), or
  the subject it is for: "For logos I want ..." → "logos"; "When drawing portraits use ..." → "portraits";
  "my landscape photos should be ..." → "landscape"; "Food shots: overhead angle" → "food"; "Draw cats
  chubby" → "cats". Words for the picture itself ("photos", "shots", "art") are not the subject.
- `placement`: "negative" for what the user does not want ("never use neon colours", "no text in my
  images", "avoid gradients"): those words go to the negative prompt. Otherwise "prompt".
- `phrase`: the style as prompt words, without the applicability clause and the first-person framing:
  "I always want my images in a soft watercolour style" → "soft watercolour style"; "For logos I want flat
  vector art with a maximum of two colors" → "flat vector art, at most two colors"; "never use neon
  colours" → "neon colours". The user's own words stay in the memory and in the receipt.

Only style memories are ever put in a prompt; preferences, facts and notes have no scope (`None`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from context_server.domain.memory.lexicon import lexicon

__all__ = ["ALWAYS", "StyleScope", "clean_applies_to", "read_style", "subject_keys", "subject_parts"]

ALWAYS = "always"
_GENRE = (r"photos?|photographs?|photography|pictures?|pics?|images?|shots?|art|artwork|renders?|renderings?|"
          r"illustrations?|drawings?|designs?|close-ups?|closeups?|scenes?|concept art|generations?|work|pieces?|"
          r"ones?|stuff|things?")
_DET = r"(?:(?:all|any|every|each|of|my|our|the|a|an|your|those|these)\s+)*"
_ALWAYS = re.compile(
    r"\b(?:always|every\s+(?:single\s+)?(?:image|picture|photo|generation|render|time|one)|"
    r"all\s+(?:of\s+)?(?:my\s+|the\s+)?(?:images|pictures|photos|generations|renders|work)|everything|"
    r"each\s+(?:image|picture)|any\s+image|in\s+general|by\s+default|no\s+matter\s+what)\b"
)
_STOPS = (r",|:|;|\.|\s+(?:i|i'd|i'm|you|use|make|please|always|should|must|they|it|keep|go|add|give|want|"
          r"draw|let|do|try|prefer|like|love|need|apply|stick|render|paint|show|put|have|are|is)\b")
_SUBJECT_PATTERNS = [
    re.compile(rf"^(?:please\s+)?for\s+{_DET}(?P<x>[a-z0-9' -]+?)(?:{_STOPS})"),
    re.compile(rf"^(?:please\s+)?when(?:ever)?\s+(?:i\s+ask\s+for|i\s+want|i\s+make|it\s+comes\s+to|you\s+(?:draw|make|"
               rf"do|create|render|paint|generate)|(?:drawing|making|creating|generating|painting|rendering|"
               rf"designing|doing|shooting|photographing|illustrating))\s+{_DET}(?P<x>[a-z0-9' -]+?)(?:{_STOPS})"),
    re.compile(rf"^{_DET}(?P<x>[a-z0-9' -]+?)\s+(?:should|must|need\s+to|needs\s+to|have\s+to|has\s+to|"
               r"are\s+to|always\s+(?:be|have|get|look|use))\b"),
    re.compile(rf"^{_DET}(?P<x>[a-z0-9' -]+?)\s*:\s"),
    re.compile(rf"^(?:please\s+)?(?:draw|paint|render|illustrate|depict|photograph|shoot|show|make)\s+{_DET}"
               r"(?P<x>[a-z0-9' -]+?)\s+(?:as|in|with|like|look|looking|[a-z]+y\b|[a-z]+ish\b|cute|small|big|"
               r"tiny|large|chubby|round|flat|simple|minimal|friendly|realistic|detailed)"),
    re.compile(rf"^{_DET}(?P<x>[a-z0-9' -]+?)\s+(?:as|on|against|in\s+front\s+of)\s"),
    re.compile(rf"\b(?:{_GENRE})\s+of\s+{_DET}(?P<x>[a-z0-9' -]+?)$"),
    re.compile(rf"\b(?:for|in)\s+{_DET}(?P<x>[a-z0-9' -]+?)$"),
]
#: Which patterns need the subject to look like a kind of picture (a plural, or a word like "shots"):
#: "Food shots: ..." and "Weapons and props as icons" are about subjects, "brand palette: teal" is not.
_NEEDS_KIND = {3, 5}
_NEGATIVE = re.compile(
    r"^(?:please[, ]+)?(?:i\s+)?(?:never|don't|do\s+not|dont|no|avoid|without|stop|hate|dislike)\b"
    r"|^(?:please[, ]+)?(?:i\s+)?(?:never|don't|do\s+not)\s+(?:want|like)\b"
)
_NOT_SUBJECTS = {"i", "it", "everything", "anything", "colour", "color", "colours", "colors", "palette",
                 "lighting", "light", "style", "mood", "tone", "background", "composition", "detail", "details",
                 "texture", "textures", "everything i make", "now", "brand palette"}


@dataclass(frozen=True)
class StyleScope:
    applies_to: str  # "always" or a subject phrase
    placement: str  # "prompt" | "negative"
    phrase: str


def clean_applies_to(value: str) -> str:
    """What a caller passed as `applies_to`, normalised: "always" or a subject phrase."""
    text = " ".join(value.lower().split()).strip(" .,;:!?")
    if not text or _ALWAYS.search(text) or text in {"all", "any", "every", "always", "everything"}:
        return ALWAYS
    return _subject(text) or ALWAYS


@lru_cache(maxsize=16384)
def read_style(content: str, applies_to: str | None = None) -> StyleScope:
    text = " ".join(content.replace("’", "'").split())
    low = text.lower().rstrip(" .!")
    negative = bool(_NEGATIVE.search(low))
    subject = clean_applies_to(applies_to) if applies_to else _find_subject(low, negative)
    if negative:
        phrase = _negative_phrase(text)
        if subject and subject != ALWAYS:  # "no text in my logos" → "text"
            tail = rf"\s+(?:in|for|on)\s+{_DET}{re.escape(subject)}(?:\s+(?:{_GENRE}))?$"
            phrase = _tidy(re.sub(tail, "", phrase, flags=re.IGNORECASE)) or phrase
    else:
        phrase = _prompt_phrase(text)
        if subject and subject != ALWAYS:  # "Weapons and props as isometric icons" → "isometric icons"
            lead = rf"^{re.escape(subject)}(?:\s+(?:{_GENRE}))?\s+(?:as\s+|(?=on\b|in\b|against\b|with\b))"
            phrase = _tidy(re.sub(lead, "", phrase, flags=re.IGNORECASE)) or phrase
    return StyleScope(subject or ALWAYS, "negative" if negative else "prompt", phrase or text.strip(" .;,"))


@lru_cache(maxsize=4096)
def subject_parts(applies_to: str) -> tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]:
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


def subject_keys(applies_to: str | None) -> str:
    """The stored `subject_keys` of a style (a JSON list): a subject style is found through each concept
    of its subject ("12") or, for a subject the lexicon does not know, its first word ("w:steampunk");
    "always" and non-styles have none (`[]`)."""
    if not applies_to or applies_to == ALWAYS:
        return "[]"
    keys: list[str] = []
    for senses, words in subject_parts(applies_to):
        keys += [str(c) for c in senses] if senses else [f"w:{words[0]}"]
    return json.dumps(sorted(set(keys)))


def _find_subject(low: str, negative: bool) -> str | None:
    if negative:  # "no text in my logos": only an "in/for X" at the end names a subject
        m = _SUBJECT_PATTERNS[-1].search(low)
        return _subject(m.group("x")) if m else None
    for number, pattern in enumerate(_SUBJECT_PATTERNS):
        m = pattern.search(low)
        if not m:
            continue
        raw = m.group("x").strip()
        if number in _NEEDS_KIND and not _looks_like_kind(raw):
            continue
        if number == len(_SUBJECT_PATTERNS) - 1 and not _looks_like_kind(raw):
            continue
        found = _subject(raw)
        if found:
            return found
    return None


def _looks_like_kind(raw: str) -> bool:
    words = raw.split()
    if not words or len(words) > 5:
        return False
    last = words[-1]
    return bool(re.fullmatch(_GENRE, last)) or (last.endswith("s") and not last.endswith("ss")) or " and " in raw


def _subject(raw: str) -> str | None:
    text = re.sub(rf"^{_DET}", "", raw.strip())
    text = re.sub(rf"\s+(?:{_GENRE})$", "", text)
    text = re.sub(rf"^(?:{_GENRE})$", "", text).strip(" -'")
    if not text or text in _NOT_SUBJECTS or len(text.split()) > 5 or _ALWAYS.search(text):
        return None
    return text


# -- the words the provider gets --------------------------------------------------------------------------

_LEADS = [
    rf"^(?:please\s*,?\s*)?for\s+{_DET}[a-z0-9' -]+?\s*(?:,|:|;)\s*",
    rf"^(?:please\s*,?\s*)?for\s+{_DET}[a-z0-9' -]+?\s+(?=i\b|you\b|use\b|make\b|please\b|always\b|give\b|add\b|keep\b|go\b)",
    r"^(?:please\s*,?\s*)?when(?:ever)?\s+(?:i\s+ask\s+for|i\s+want|i\s+make|it\s+comes\s+to|you\s+\w+|\w+ing)\s+"
    rf"{_DET}[a-z0-9' -]+?\s*(?:,\s*|\s+(?=use\b|make\b|give\b|add\b|i\b|you\b|please\b|always\b|keep\b|go\b|them\b))",
    rf"^{_DET}[a-z0-9' -]+?\s*:\s*",
    rf"^{_DET}[a-z0-9' -]+?\s+(?:should|must|need\s+to|needs\s+to|have\s+to|has\s+to)\s+(?:always\s+)?"
    r"(?:be\s+drawn|be\s+rendered|be\s+shown|be\s+made|be\s+in|be|look\s+like|have|use|get|feature|show|come\s+out)?\s*",
    rf"^(?:please\s+)?(?:draw|paint|render|illustrate|depict|show)\s+{_DET}[a-z0-9'-]+(?:\s+and\s+[a-z0-9'-]+)?\s+(?:as\s+)?",
]
_FRAMING = [
    r"^(?:please\s*,?\s*)",
    r"^i(?:'d| would)?\s+(?:always\s+|really\s+|usually\s+)?(?:want|like|prefer|love|need|use)\s+"
    r"(?:(?:all\s+)?(?:my\s+)?(?:images|pictures|photos|everything|them|it)\s+)?(?:to\s+(?:be|have|look\s+like|use)\s+)?"
    r"(?:in\s+|with\s+|as\s+)?",
    r"^(?:always\s+)?(?:use|make\s+(?:everything|it|them|all|every\s+image)|give\s+(?:it|them|me|everything)|add|"
    r"apply|go\s+with|stick\s+to|keep\s+(?:it|them|everything))\s+",
    r"^(?:everything|every\s+image(?:\s+i\s+make)?|all\s+(?:of\s+)?my\s+(?:images|pictures|photos))\s+"
    r"(?:should|must|is|are|has\s+to|needs\s+to)\s+(?:always\s+)?(?:be\s+in|be|look\s+like|have|use|get)?\s*",
    r"^(?:always|everything|in\s+general|by\s+default)\s*,?\s*",
    r"^(?:to\s+)?(?:be\s+in|be|look\s+like|have|use)\s+",
    r"^(?:a|an|the)\s+",
]
_TAILS = [
    r"\s*,?\s*(?:in|for|on|across)\s+(?:all\s+(?:of\s+)?)?(?:my|every|each|any|all|the)\s+(?:images?|pictures?|"
    r"photos?|generations?|renders?|work)\b.*$",
    r"\s*,?\s*\b(?:please|for\s+now|always|every\s+time|from\s+now\s+on|by\s+default|in\s+general)$",
    r"\s*,?\s*for\s+(?:all\s+)?(?:my\s+)?[a-z0-9' -]+?(?:s|shots|photos|images)$",
]
_REWRITES = [
    (r"\s+with\s+a\s+maximum\s+of\s+", ", at most "),
    (r"\s+with\s+no\s+more\s+than\s+", ", at most "),
    (r"\b(?:a\s+)?maximum\s+of\s+", "at most "),
    (r"\bno\s+more\s+than\s+", "at most "),
    (r"\s+max(?:imum)?\.?$", " at most"),
]


def _strip(text: str, patterns: list[str], repeat: bool = True) -> str:
    changed = True
    while changed:
        changed = False
        for pattern in patterns:
            new = re.sub(pattern, "", text, count=1, flags=re.IGNORECASE)
            if new != text and new.strip():
                text, changed = new.strip(), repeat
    return text


def _prompt_phrase(text: str) -> str:
    out = text.strip().rstrip(" .!;")
    for pattern in _LEADS:
        new = re.sub(pattern, "", out, count=1, flags=re.IGNORECASE)
        if new != out and new.strip():
            out = new.strip()
            break
    out = _strip(out, _FRAMING)
    out = _strip(out, _TAILS, repeat=False)
    for pattern, replacement in _REWRITES:
        out = re.sub(pattern, replacement, out, flags=re.IGNORECASE)
    return _tidy(out)


def _negative_phrase(text: str) -> str:
    out = text.strip().rstrip(" .!;")
    out = re.sub(r"^(?:please\s*,?\s*)", "", out, flags=re.IGNORECASE)
    out = re.sub(r"^(?:i\s+)?(?:never|don't|do\s+not|dont|avoid|no|without|stop|hate|dislike)\s+"
                 r"(?:(?:ever\s+)?(?:want|like|use|using|show|showing|include|including|add|adding|put|draw|have|"
                 r"make|give|generate)\s+(?:me\s+)?)?", "", out, flags=re.IGNORECASE)
    out = re.sub(r"^(?:any|anything|any\s+kind\s+of)\s+", "", out, flags=re.IGNORECASE)
    out = _strip(out, _TAILS[:2], repeat=False)
    out = re.sub(r"\s*,?\s*\b(?:ever|at\s+all|please)$", "", out, flags=re.IGNORECASE)
    parts = [p.strip() for p in re.split(r"\s*,\s*|\s+or\s+|\s+and\s+|\s+nor\s+", out) if p.strip()]
    return ", ".join(parts)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,;:])", r"\1", text)
    text = re.sub(r"([,;:])\1+", r"\1", text)
    return text.strip(" ,;:.")

"""Text hygiene for what users ask us to remember, and safe full-text queries.

Memories flow back into prompts and into the assistant's context, so characters that can hide or reorder
text (bidi overrides, Unicode tag characters used for invisible prompt injection, zero-width joiners) are
removed on save, not merely escaped on display.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fts_query", "normalise_for_match", "sanitise"]

_INVISIBLE = (
    "\u200b\u200c\u200d\u2060\ufeff"  # zero-width space/non-joiner/joiner, word joiner, BOM
    "\u200e\u200f\u061c"  # LRM, RLM, Arabic letter mark
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\u00ad\u180e"  # soft hyphen, Mongolian vowel separator
)
_STRIP = {ord(ch): None for ch in _INVISIBLE}
_STRIP.update({cp: None for cp in range(0xE0000, 0xE0080)})  # Unicode tag characters
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def sanitise(text: str) -> str:
    """Remove control, bidi, tag and zero-width characters; newlines/tabs become spaces; collapse spaces.

    >>> sanitise("warm\\u202e palette\\n\\tplease\\u200b\\x07")
    'warm palette please'
    """
    if text.isascii() and text.isprintable():  # the common case: nothing to strip (bulk imports)
        return _WHITESPACE.sub(" ", text).strip()
    text = text.translate(_STRIP)
    cleaned = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\t\r\v\f":
            cleaned.append(" ")
        elif category in ("Cc", "Cf", "Cs"):
            continue
        else:
            cleaned.append(ch)
    return _WHITESPACE.sub(" ", "".join(cleaned)).strip()


def normalise_for_match(text: str) -> str:
    """The form two memories share when they are the same text: NFKC, casefolded, spacing and edge
    punctuation ignored. "Use warm colours." and "use  WARM colours" match."""
    text = unicodedata.normalize("NFKC", sanitise(text)).casefold()
    return _EDGE_PUNCT.sub("", text).strip()


def fts_query(text: str, *, max_terms: int = 32) -> str | None:
    """An FTS5 MATCH expression that finds any of the words in `text`, or None when it has none.

    Every term is a double-quoted string of word characters, so user text can never be read as FTS5
    syntax (NEAR, column filters, `*`, unbalanced quotes).
    """
    seen: dict[str, None] = {}
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if word not in seen:
            seen[word] = None
        if len(seen) >= max_terms:
            break
    if not seen:
        return None
    return " OR ".join(f'"{word}"' for word in seen)

"""What a piece of text is *about*: the subject lexicon, and matching words to kinds of things.

The lexicon (`context_server/data/lexicon.json.gz`) is derived from WordNet 3.0 plus a small hand-made
supplement by `scripts/build_lexicon.py`: about 46,000 words for concrete things, each mapped to its common
senses ("concepts"), and every concept's parents (a corgi is a dog, a dog an animal, ramen a noodle soup,
a noodle soup food; a mountain is part of the "landscape" topic, an emblem of the "logo" topic).

Text is read into *units*: the longest lexicon entry at each position, so "hot dog" is one unit (a food)
and never a dog, "ship in a bottle" is one unit and never a ship; single words like "catfish" or "dogwood"
are their own words and never "cat" or "dog". Plurals and irregular forms are reduced to the lexicon word.

`Analysis.concepts` is the closure of every unit's concepts (the things themselves and all their
parents); "is this text about X" is then a set lookup: `about(analysis, query_concepts)`.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from context_server.adapters.store import Store

__all__ = ["Analysis", "Lexicon", "Unit", "described_with_lexicon", "lexicon", "tokens"]

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_MAX_UNIT_WORDS = 4


def tokens(text: str) -> list[str]:
    """Lower-case words, possessives dropped ("children's" → "children"), hyphenated words kept whole."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    return [t[:-2] if t.endswith("'s") else t.rstrip("'") for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class Unit:
    text: str  # the lexicon word (lemma), e.g. "hot dog"
    concepts: tuple[int, ...]  # its senses; empty for a word the lexicon does not know
    start: int  # index of its first token
    end: int  # index after its last token


@dataclass
class Analysis:
    units: list[Unit] = field(default_factory=list)
    concepts: frozenset[int] = frozenset()  # closure of every known unit
    words: frozenset[str] = frozenset()  # every unit's text and each word's base form

    def has_word(self, word: str) -> bool:
        return word in self.words


class Lexicon:
    def __init__(self, data: dict[str, object]) -> None:
        self.version = str(data["version"])
        self.terms: dict[str, tuple[int, ...]] = {w: tuple(ids) for w, ids in data["terms"].items()}  # type: ignore[attr-defined]
        self.parents: list[list[int]] = data["parents"]  # type: ignore[assignment]
        self.plurals: dict[str, str] = data["plurals"]  # type: ignore[assignment]
        self.names: dict[int, str] = {int(k): v for k, v in data["names"].items()}  # type: ignore[attr-defined]
        #: other real words (not things), never spell-corrected into one
        self.words: frozenset[str] = frozenset(data.get("words", ()))  # type: ignore[call-overload]
        self._ids = {name: number for number, name in self.names.items()}
        #: first word of each multi-word entry → its longest length in words, so most words try one lookup
        self._starts: dict[str, int] = {}
        for term in self.terms:
            if " " in term:
                first, n = term.split(" ", 1)[0], term.count(" ") + 1
                self._starts[first] = max(self._starts.get(first, 0), n)

    # -- words ------------------------------------------------------------------------------------------

    @lru_cache(maxsize=65536)  # noqa: B019 - one Lexicon per process
    def lemma(self, word: str) -> str:
        """The lexicon form of `word` ("puppies" → "puppy", "mice" → "mouse"), or a plain singular guess."""
        if word in self.terms:
            return word
        if word in self.plurals:
            return self.plurals[word]
        for form in _singulars(word):
            if form in self.terms:
                return form
        guesses = _singulars(word)
        return guesses[-1] if guesses else word

    def concepts_of(self, word: str) -> tuple[int, ...]:
        return self.terms.get(self.lemma(word), ())

    def topic(self, name: str) -> int | None:
        return self._ids.get(name)

    def closure(self, concepts: Iterable[int]) -> frozenset[int]:
        out: set[int] = set()
        for concept in concepts:
            out |= self._closure(concept)
        return frozenset(out)

    @lru_cache(maxsize=65536)  # noqa: B019 - one Lexicon per process, never freed
    def _closure(self, concept: int) -> frozenset[int]:
        """The concept and all its parents; iterative, and safe where the supplement makes a topic and a
        word each other's parent (city ↔ cityscape)."""
        out = {concept}
        todo = [concept]
        while todo:
            for parent in self.parents[todo.pop()]:
                if parent not in out:
                    out.add(parent)
                    todo.append(parent)
        return frozenset(out)

    def correct(self, word: str) -> str | None:
        """A lexicon word one edit away from an unknown word of 5+ letters ("spacehsip" → "spaceship").
        A real word that is not a thing is left alone: "sleek" is not a misspelt "leek"."""
        if len(word) < 5 or self.concepts_of(word) or word in self.words or self.lemma(word) in self.words:
            return None
        letters = "abcdefghijklmnopqrstuvwxyz"
        splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
        # swapped letters first (the commonest slip), then a letter missing, doubled or wrong; edits of
        # the first letter last, since people rarely get it wrong ("dargon" is a dragon, not argon)
        candidates = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
        for keep_first in (True, False):
            rest = [(a, b) for a, b in splits if bool(a) == keep_first]
            candidates += [a + b[1:] for a, b in rest if b]
            candidates += [a + c + b for a, b in rest for c in letters]
            candidates += [a + c + b[1:] for a, b in rest if b for c in letters]
        for candidate in candidates:
            if candidate != word and self.concepts_of(candidate):
                return self.lemma(candidate)
        return None

    # -- text -------------------------------------------------------------------------------------------

    def units(self, text: str) -> list[Unit]:
        """The text's words, longest lexicon entries first ("a hot dog stand" → "hot dog stand")."""
        words = tokens(text)
        out: list[Unit] = []
        i = 0
        while i < len(words):
            longest = min(self._starts.get(words[i], 1), _MAX_UNIT_WORDS, len(words) - i)
            for size in range(longest, 0, -1):
                span = words[i:i + size]
                key = " ".join([*span[:-1], self.lemma(span[-1])])
                found = self.terms.get(key) or self.terms.get(" ".join(span))
                if found is None and "-" in key:
                    found = self.terms.get(key.replace("-", " "))
                if found is not None:
                    out.append(Unit(key, found, i, i + size))
                    i += size
                    break
            else:
                out.append(Unit(self.lemma(words[i]), (), i, i + 1))
                i += 1
        return out

    def analyse(self, text: str) -> Analysis:
        return self._analyse(text)

    @lru_cache(maxsize=8192)  # noqa: B019 - one Lexicon per process
    def _analyse(self, text: str) -> Analysis:
        units = self.units(text)
        concepts = self.closure(c for u in units for c in u.concepts)
        words = {u.text for u in units}
        words.update(w for u in units for w in u.text.split())
        words.update(tokens(text))
        return Analysis(units, concepts, frozenset(words))

    def about(self, analysis: Analysis, concepts: Iterable[int]) -> bool:
        """True when the analysed text mentions a thing of one of these kinds."""
        return any(c in analysis.concepts for c in concepts)


def _singulars(word: str) -> list[str]:
    forms = []
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("ves") and len(word) > 4:
        forms += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("men") and len(word) > 4:
        forms.append(word[:-3] + "man")
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        forms.append(word[:-1])
    return forms


_LOADING = threading.Lock()


@cache
def lexicon() -> Lexicon:
    """The shipped lexicon, read once per process (about 0.2 s of CPU). Under a lock: a starting server's
    warm-up and its first requests ask for it at the same moment, and `cache` alone let each thread read it."""
    with _LOADING:
        return _read_lexicon()


@cache
def _read_lexicon() -> Lexicon:
    raw = resources.files("context_server").joinpath("data/lexicon.json.gz").read_bytes()
    return Lexicon(json.loads(gzip.decompress(raw)))


@contextmanager
def described_with_lexicon(store: Store, key: str, table: str, column: str, rows: str = "1 = 1") -> Iterator[None]:
    """For a fill of stored descriptions (`column` of `table`, for the `rows` condition) made with the
    lexicon: when they were made under another lexicon version (recorded in `index_meta` under `key`),
    clear them user by user first, so the fill in the block makes them again; record this version after."""
    version = lexicon().version
    seen = store.one("select value from index_meta where key = ?", [key])
    if seen is not None and seen["value"] != version:
        users = [r["user_id"] for r in store.query(f"select distinct user_id from {table} where {rows}")]
        with store.write() as db:
            for user in users:
                db.execute(f"update {table} set {column} = null where user_id = ? and {rows}", [user])
    yield
    with store.write() as db:
        db.execute("insert or replace into index_meta(key, value) values (?, ?)", [key, version])

"""Resolving references to earlier images: an id, "the previous one", or "my first cat image".

A phrase is read into its parts first (`phrases.parse_phrase`): which one, this conversation or all of
the user's images, the subject, and a time window. Then:

1. The candidates are the caller's own, non-incognito images that still exist, in the time window, and
   for session words ("it", "the one before that") those made in this conversation.
2. A subject decides per image whether it *is* one (`lexicon.py`): every thing the subject names must be
   among the image's subjects (a corgi is a dog, ramen is food, an astronaut on the moon is space; a hot
   dog is not a dog, a ship in a bottle not a spaceship). Other words of the subject ("blue", "sleek")
   must appear in the image's description (colour words match their shades). An image is described by
   its prompt, or for an edit by its source's description plus the instruction, through any chain of
   edits; that description and its subjects are stored when the image is made (`describe_image`).
3. "Which one" is applied over the matches by creation time: the newest unless the phrase says first,
   second, second to last, ...

A subject the lexicon does not know at all is matched by its words, and only failing that by meaning
(the image index), with a high bar. No match is an error that lists the closest images, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from context_server.adapters.store import Store
from context_server.domain.memory.lexicon import Analysis, Unit, described_with_lexicon, lexicon
from context_server.domain.memory.phrases import Phrase, parse_phrase
from context_server.domain.sessions import Session
from context_server.errors import InvalidInput, NotFound

__all__ = ["MEANING_SCORE", "Reference", "References", "describe_image", "fill_subjects", "subjects_text"]

SearchFn = Callable[[str, str, int], list[tuple[str, float]]]
"""(user_id, query, limit) → [(image_id, score 0..1)], best first."""

#: A subject the lexicon does not know and no prompt contains word for word may still be found by
#: meaning, but only this close (all-MiniLM-L6-v2 cosine): below it, look-alikes win too often.
MEANING_SCORE = 0.5
_CANDIDATES = 2000
_ALTERNATIVES = 5  # how many other matches a receipt lists
_ID = re.compile(r"^[0-9a-f]{32}$")
_COLOURS = {
    "red": {"crimson", "scarlet", "ruby", "maroon", "burgundy", "cherry"},
    "blue": {"navy", "azure", "cobalt", "sapphire", "teal", "cyan", "turquoise", "indigo"},
    "green": {"emerald", "jade", "olive", "lime", "mint", "sage"},
    "yellow": {"gold", "golden", "amber", "lemon", "mustard"},
    "orange": {"amber", "tangerine", "copper", "rust"},
    "purple": {"violet", "lavender", "lilac", "magenta", "plum", "mauve"},
    "pink": {"rose", "magenta", "blush", "salmon", "fuchsia"},
    "grey": {"gray", "silver", "slate", "charcoal"},
    "gray": {"grey", "silver", "slate", "charcoal"},
    "silver": {"grey", "gray", "chrome", "metallic"},
    "white": {"ivory", "snowy", "cream", "pearl"},
    "black": {"ebony", "jet", "onyx", "dark"},
    "brown": {"chocolate", "tan", "bronze", "sepia"},
    "gold": {"golden", "yellow"},
}
_ALL_COLOURS = set(_COLOURS) | {shade for shades in _COLOURS.values() for shade in shades}


def subjects_text(analysis: Analysis) -> str:
    """The stored form of what a text is about: " 12 345 678 " (concept numbers; see lexicon.py)."""
    return " " + " ".join(str(c) for c in sorted(analysis.concepts)) + " "


def describe_image(store: Store, user_id: str, prompt: str, parent_id: str | None, kind: str) -> dict[str, str]:
    """`search_text` and `subjects` for a new image: an edit carries its source's description."""
    text = prompt.strip()
    if kind == "edit" and parent_id:
        parent = store.one("select prompt, search_text from images where id = ? and user_id = ?",
                           [parent_id, user_id])
        if parent is not None:
            source = (parent["search_text"] or parent["prompt"] or "").strip().rstrip(".;, ")
            text = f"{source}; {text}" if source else text
    return {"search_text": text, "subjects": subjects_text(lexicon().analyse(text))}


def fill_subjects(store: Store, batch: int = 500) -> int:
    """Describe the images stored before descriptions were (or under another lexicon version); returns how
    many. Runs in the server's warm-up; until it has, those rows are checked one by one when resolving."""
    lex = lexicon()
    done = 0
    with described_with_lexicon(store, "subjects_lexicon", "images", "subjects"):
        while rows := store.query("select rowid, id, user_id, prompt, parent_id, search_text from images "
                                  "where subjects is null order by rowid limit ?", [batch]):
            with store.write() as db:
                for row in rows:
                    text = row["search_text"] or row["prompt"] or ""
                    db.execute("update images set search_text = ?, subjects = ? where rowid = ? and user_id = ?",
                               [text, subjects_text(lex.analyse(text)), row["rowid"], row["user_id"]])
            done += len(rows)
    return done


@dataclass
class Reference:
    image_id: str
    prompt: str
    score: float
    row: dict[str, Any]
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""


@dataclass
class _Query:
    """A subject, read: the lexicon things it names (each a set of senses) and its other words."""

    text: str
    things: list[tuple[str, tuple[int, ...]]]
    words: list[str]

    @property
    def known(self) -> bool:
        return bool(self.things)


def _read_subject(subject: str) -> _Query:
    lex = lexicon()
    things: list[tuple[str, tuple[int, ...]]] = []
    words: list[str] = []
    units = []
    for unit in lex.units(subject):
        first, _, rest = unit.text.partition(" ")
        if rest and first in _COLOURS:  # "the red bird", "the black cat": a bird that is red, not WordNet's
            units.append(Unit(first, (), unit.start, unit.start + 1))  # "redbird" or "black cat" (a marten)
            units.extend(lex.units(rest))
        else:
            units.append(unit)
    for unit in units:
        if unit.text in _COLOURS or (unit.text in _ALL_COLOURS and not unit.concepts):
            # "the blue spaceship": a colour describes, it is not a thing (a rose stays a rose)
            words.append(unit.text)
            continue
        if unit.concepts:
            things.append((unit.text, _own_senses(unit.text, unit.concepts)))
            continue
        fixed = lex.correct(unit.text)
        if fixed is not None:
            things.append((fixed, lex.concepts_of(fixed)))
        elif unit.text not in {"and", "or", "in", "on", "at", "with", "of", "for", "by", "to"}:
            words.append(unit.text)
    return _Query(subject, things, words)


def _own_senses(text: str, senses: tuple[int, ...]) -> tuple[int, ...]:
    """A compound the lexicon also reads as its head word ("black cat" is a cat in a picture) means only
    itself when asked for: "my big cat photo" is the tiger, not the kitten."""
    if " " not in text:
        return senses
    head = lexicon().terms.get(text.rsplit(" ", 1)[1], ())
    own = tuple(c for c in senses if c not in head)
    return own if own and len(own) < len(senses) else senses


def _word_forms(word: str) -> list[str]:
    """What a description must contain (LIKE, any case) to possibly say `word`: a colour or one of its
    shades, or the word's stem (its first len-2 letters: "ponies" and "pony" share "po")."""
    if word in _COLOURS:
        return sorted({word, *_COLOURS[word]})
    stem = min(word, lexicon().lemma(word), key=len)
    return [stem[:max(1, len(stem) - 2)]]


def _has_word(text: str, analysis: Analysis | None, word: str) -> bool:
    """Does the description say `word`? A colour is read from the latest part that names one: after
    "a silver starship; make it blue; make it red" the image is red, no longer silver or blue."""
    if word in _COLOURS:
        for part in reversed(text.lower().split(";")):
            said = set(re.findall(r"[a-z]+", part)) & _ALL_COLOURS
            if said:
                return word in said or bool(_COLOURS[word] & said)
        return False
    assert analysis is not None, "a word other than a colour is read from the analysed description"
    return analysis.has_word(word) or analysis.has_word(lexicon().lemma(word))


class References:
    def __init__(self, store: Store, search: SearchFn) -> None:
        self.store = store
        self.search = search

    def _row(self, user_id: str, image_id: str) -> dict[str, Any] | None:
        return self.store.one("select * from images where id = ? and user_id = ?", [image_id, user_id])

    def resolve(self, user_id: str, session: Session, words: str) -> Reference:
        text = " ".join(words.strip().split())
        if not text:
            raise InvalidInput("reference is empty; give an image id or words like 'the previous one' or "
                               "'my last spaceship image'")
        row = self._row(user_id, text)
        if row is not None:
            return Reference(row["id"], _description(row), 1.0, row, reason="the image id given")
        if _ID.match(text.lower()):
            raise NotFound(f"no image {text!r}")
        phrase = parse_phrase(text)
        if phrase.session:
            return self._in_session(user_id, session, phrase)
        if phrase.anchor:
            return self._next_to(user_id, phrase)
        if phrase.subject:
            return self._by_subject(user_id, phrase)
        total, rows = self._candidates(user_id, phrase, session_id=None)
        what = "images" + (f" {phrase.when_words}" if phrase.when_words else "")
        if not rows:
            raise NotFound(f"you have no {what} yet" if phrase.when_words else "you have no images yet")
        return self._pick(user_id, rows, phrase, f"{{which}} of your {total} {what}", total)

    # -- the three ways ---------------------------------------------------------------------------------

    def _in_session(self, user_id: str, session: Session, phrase: Phrase) -> Reference:
        """Session words point into this conversation only: after a restart "the one you just made" is
        nothing, and saying so beats guessing (the user's images are one "my last image" away)."""
        total, rows = self._candidates(user_id, phrase, session_id=session.id)
        if not rows and session.last_image_id:
            row = self._row(user_id, session.last_image_id)
            rows = [row] if row is not None and not row["incognito"] else []
            total = len(rows)
        if not rows:
            raise NotFound("there is no previous image in this session yet; give an image id or describe it "
                           "('my last image', 'my last spaceship image')")
        return self._pick(user_id, rows, phrase, "{which} of the " + f"{total} images made in this conversation",
                          total)

    def _by_subject(self, user_id: str, phrase: Phrase) -> Reference:
        query = _read_subject(phrase.subject)
        total, matches = self._matching(user_id, phrase, query)
        how = ""
        if not matches and not query.known and query.words:
            matches, how = self._by_meaning(user_id, phrase), " (closest in meaning)"
            total = len(matches)
        when = f" {phrase.when_words}" if phrase.when_words else ""
        if not matches:
            raise NotFound(self._no_match(user_id, phrase, f"{phrase.subject!r}{when}"))
        noun = f"{phrase.subject} image" + ("s" if total > 1 else "")
        template = "{which} of " + f"{total} {noun}{when}{how}"
        if total == 1:
            template = f"the only {phrase.subject} image{when}{how}"
        return self._pick(user_id, matches, phrase, template, total)

    def _matching(self, user_id: str, phrase: Phrase, query: _Query) -> tuple[int, list[dict[str, Any]]]:
        """How many of the user's images are what the subject names, and the ones "which one" needs.

        The things it names are looked up in `image_subjects` (per thing, one index range per sense; several
        things intersect), which also counts them and orders them by time without reading an image row.
        The subject's other words ("blue", "sleek") are narrowed with LIKE (the word's stem or a colour's
        shades must be in the description) and then checked here. Until the warm-up has described every
        image of the user (`fill_subjects`), every candidate is checked here instead."""
        described = self.store.one("select 1 as x from images where user_id = ? and subjects is null limit 1",
                                   [user_id]) is None
        order = "asc" if phrase.which > 0 else "desc"
        window = abs(phrase.which) + _ALTERNATIVES
        if described and query.things:
            parts, params = [], []
            for _, senses in query.things:
                part = (f"select distinct image_id, created_at from image_subjects where user_id = ? "
                        f"and concept in ({','.join('?' * len(senses))})")
                params += [user_id, *senses]
                if phrase.when is not None:
                    part += " and created_at >= ? and created_at < ?"
                    params.extend(_utc(t) for t in phrase.when)
                parts.append(part)
            found = " intersect ".join(parts)
            if not query.words:  # the index decided: count them, read only the rows the choice needs
                ids = self.store.query(f"select count(*) over () as total, image_id from ({found}) "
                                       f"order by created_at {order}, image_id {order} limit {window}", params)
                by_id = self._rows(user_id, [r["image_id"] for r in ids])
                return (int(ids[0]["total"]) if ids else 0), [by_id[r["image_id"]] for r in ids if r["image_id"] in by_id]
            sql, more = self._where(user_id, phrase, session_id=None)
            sql += f" and id in (select image_id from ({found}))"
            params = more + params
        else:
            sql, params = self._where(user_id, phrase, session_id=None)
            for _, senses in query.things:  # rows not yet described (NULL) are checked below
                sql += " and (subjects is null or " + " or ".join("subjects like ?" for _ in senses) + ")"
                params.extend(f"% {c} %" for c in senses)
        for word in query.words:
            forms = _word_forms(word)
            sql += " and (" + " or ".join("coalesce(search_text, prompt) like ?" for _ in forms) + ")"
            params.extend(f"%{form}%" for form in forms)
        rows = self.store.query(sql + f" order by created_at {order}, rowid {order} limit {_CANDIDATES}", params)
        lex = lexicon()
        matches = []
        for row in rows:
            text = row["search_text"] or row["prompt"]
            recheck = not described and bool(query.things)
            analysis = lex.analyse(text) if recheck or any(w not in _COLOURS for w in query.words) else None
            if recheck and analysis is not None and not all(lex.about(analysis, s) for _, s in query.things):
                continue
            if all(_has_word(text, analysis, w) for w in query.words):
                matches.append(row)
        return len(matches), matches

    def _next_to(self, user_id: str, phrase: Phrase) -> Reference:
        """"the one before the lighthouse": the image made just before (or after) the one the words name."""
        anchor = self._by_subject(user_id, phrase)
        at = anchor.row
        older = phrase.step < 0
        row = self.store.one(
            "select * from images where user_id = ? and incognito = 0 and "
            + ("(created_at < ? or (created_at = ? and rowid < ?)) order by created_at desc, rowid desc"
               if older else "(created_at > ? or (created_at = ? and rowid > ?)) order by created_at, rowid")
            + " limit 1", [user_id, at["created_at"], at["created_at"], self._rowid(user_id, at["id"])])
        if row is None:
            raise NotFound(f"no image of yours was made {'before' if older else 'after'} {anchor.prompt!r} "
                           f"(image_id {anchor.image_id})")
        reason = f"made just {'before' if older else 'after'} the {anchor.reason.replace('the only ', '')}"
        return Reference(row["id"], _description(row), 1.0, row,
                         [{"image_id": anchor.image_id, "prompt": anchor.prompt, "created_at": at["created_at"]}],
                         reason)

    def _rowid(self, user_id: str, image_id: str) -> int:
        found = self.store.one("select rowid from images where id = ? and user_id = ?", [image_id, user_id])
        return int(found["rowid"]) if found else 0

    def _by_meaning(self, user_id: str, phrase: Phrase) -> list[dict[str, Any]]:
        try:
            hits = [(i, s) for i, s in self.search(user_id, phrase.subject, 20) if s >= MEANING_SCORE]
        except Exception:
            return []
        rows = self._rows(user_id, [i for i, _ in hits])
        found = [rows[i] for i, _ in hits if i in rows and not rows[i]["incognito"]]
        if phrase.when is not None:
            start, end = (_utc(t) for t in phrase.when)
            found = [r for r in found if start <= r["created_at"] < end]
        return sorted(found, key=lambda r: r["created_at"], reverse=True)

    # -- helpers ----------------------------------------------------------------------------------------

    def _where(self, user_id: str, phrase: Phrase, session_id: str | None) -> tuple[str, list[Any]]:
        """The user's own images that may be meant: not incognito, in this conversation and time window."""
        sql = ("select rowid, id, prompt, search_text, subjects, created_at from images "
               "where user_id = ? and incognito = 0")
        params: list[Any] = [user_id]
        if session_id is not None:
            sql += " and session_id = ?"
            params.append(session_id)
        if phrase.when is not None:
            sql += " and created_at >= ? and created_at < ?"
            params.extend(_utc(t) for t in phrase.when)
        return sql, params

    def _candidates(self, user_id: str, phrase: Phrase, session_id: str | None) -> tuple[int, list[dict[str, Any]]]:
        """How many images may be meant, and the ones "which one" needs (newest first, or oldest first when
        counting from the oldest)."""
        sql, params = self._where(user_id, phrase, session_id)
        order = "asc" if phrase.which > 0 else "desc"
        rows = self.store.query(
            sql.replace("select ", "select count(*) over () as total, ", 1)
            + f" order by created_at {order}, rowid {order} limit {abs(phrase.which) + _ALTERNATIVES}", params)
        return (int(rows[0]["total"]) if rows else 0), rows

    def _rows(self, user_id: str, image_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not image_ids:
            return {}
        marks = ",".join("?" * len(image_ids))
        found = self.store.query(f"select * from images where +user_id = ? and id in ({marks})",
                                 [user_id, *image_ids])
        return {row["id"]: row for row in found}

    def _pick(self, user_id: str, rows: list[dict[str, Any]], phrase: Phrase, template: str,
              total: int) -> Reference:
        """Apply "which one" to the matches: `rows` holds all `total` of them, or (read in counting order)
        at least the first |which| + 5, which is every row the choice and its 5 nearest alternatives need."""
        ordered = sorted(rows, key=lambda r: (r["created_at"], r.get("rowid") or 0))
        index = phrase.which - 1 if phrase.which > 0 else len(ordered) + phrase.which
        if abs(phrase.which) > total or not 0 <= index < len(ordered):
            raise NotFound(f"there are only {total} matching images, so there is no "
                           f"{phrase.which_words}; " + _listing(ordered[-5:][::-1]))
        chosen = ordered[index]
        full = self._row(user_id, chosen["id"]) or chosen
        others = [r for i, r in sorted(enumerate(ordered), key=lambda p: abs(p[0] - index)) if i != index]
        alternatives = [{"image_id": r["id"], "prompt": _description(r), "created_at": r["created_at"]}
                        for r in others[:_ALTERNATIVES]]
        which = {-1: "newest", 1: "oldest"}.get(phrase.which, phrase.which_words)
        reason = template.replace("{which}", which)
        if total == 1 and "{which}" in template:
            reason = template.replace("{which} of", "the only one of")
        return Reference(chosen["id"], _description(full), 1.0, full, alternatives, reason)

    def _no_match(self, user_id: str, phrase: Phrase, what: str) -> str:
        closest: list[dict[str, Any]] = []
        try:
            hits = self.search(user_id, phrase.subject or phrase.text, 5)
            rows = self._rows(user_id, [i for i, _ in hits])
            closest = [rows[i] for i, _ in hits if i in rows and not rows[i]["incognito"]][:3]
        except Exception:
            closest = []
        if not closest:
            closest = self.store.query("select id, prompt, search_text, created_at from images where user_id = ? "
                                       "and incognito = 0 order by created_at desc limit 3", [user_id])
        if not closest:
            return "you have no images yet"
        return f"no image of yours matches {what}; " + _listing(closest)


def _description(row: dict[str, Any]) -> str:
    return str(row.get("search_text") or row.get("prompt") or "")


def _listing(rows: list[dict[str, Any]]) -> str:
    parts = [f"image_id {r['id']}: {_description(r)[:80]!r} ({r['created_at'][:16].replace('T', ' ')} UTC)"
             for r in rows]
    return "the closest are " + "; ".join(parts) + ". Pass an image_id to use one of them."


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


"""Reading a reference phrase ("my first cat image", "the one before that", "the blue spaceship from
yesterday") into its parts, before any image is looked at.

- which: 1 = the oldest ("first", "earliest", "oldest"), 2 = the second oldest ("second"), ...;
  -1 = the newest ("last", "latest", "newest", "most recent", and the default), -2 = the one before the
  newest ("second to last", "the one before that", "penultimate"), ...
- session: the phrase points into this conversation ("it", "that one", "the previous one", "the one you
  just made", "the one before that") rather than at everything the user ever made ("my last X").
- subject: what is left once those words and filler ("my", "the", "image", "picture", "from before") are
  taken out: "blue spaceship", "noodle soup", or "" for "my last image".
- when: a time window in the server's local time ("yesterday", "this morning", "last week", "today").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from context_server.domain.memory.lexicon import lexicon

__all__ = ["Phrase", "parse_phrase"]

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}
_NEWEST = r"(?:last|latest|newest|most recent|recent|previous|current|final)"

# (pattern, which): counted from the newest end; tried in order, the first that matches wins.
_FROM_NEWEST = [
    (r"\b(\w+)[- ]to[- ]last\b|\b(\w+)[- ]to[- ]the[- ]last\b", None),
    (rf"\b(second|third|fourth|fifth|2nd|3rd|4th|5th) (?:{_NEWEST}|most recently made)\b", None),
    (r"\bpenultimate\b|\bnext[- ]to[- ]last\b|\bone before (?:the )?last\b", -2),
    (r"\b(?:the )?(?:one|image|picture|pic|photo) before (?:that|this|it|the previous one|the last one)\b"
     r"|\bbefore that(?: one)?\b", -2),
]
_OLDEST = r"\b(?:very first|first|earliest|oldest|original)\b"
_SESSION = re.compile(
    r"\b(?:it|that|this|those|these|previous|just|you made|you generated|you created|you drew|above|"
    r"same|current)\b"
)
_FILLER = re.compile(
    r"\b(?:use|using|edit|take|please|again|the|a|an|my|mine|our|of|one|ones|image|images|picture|pictures|"
    r"pic|pics|photo|photos|photograph|render|rendering|drawing|generation|version|shot|i|you|we|"
    r"made|make|did|do|created|generated|drew|just|earlier|before|from|back|ago|that|this|those|these|it|"
    r"which|with|was|were|had|have|is|showing|shows|show|where|there|previous|previously|same|current|"
    r"above|one's|ones|'s|last|latest|newest|recent|most|final|first|earliest|oldest|original|very)\b"
)
_TIME_WORDS = [
    (r"\b(?:from |made |taken )?yesterday(?:'s)?\b", "yesterday"),
    (r"\b(?:from |made )?last night\b", "last_night"),
    (r"\b(?:from |made )?(?:earlier )?this morning\b", "this_morning"),
    (r"\b(?:from |made )?(?:earlier )?this afternoon\b", "this_afternoon"),
    (r"\b(?:from |made )?(?:this evening|tonight)\b", "this_evening"),
    (r"\b(?:from |made )?(?:earlier )?today(?:'s)?\b", "today"),
    (r"\b(?:from |made )?last week(?:'s)?\b", "last_week"),
    (r"\b(?:from |made )?this week(?:'s)?\b", "this_week"),
    (r"\b(?:from |made )?last month(?:'s)?\b", "last_month"),
    (r"\b(?:from |made )?(\d+|two|three|four|five|six) days ago\b", "days_ago"),
]
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


@dataclass(frozen=True)
class Phrase:
    text: str
    which: int = -1
    session: bool = False
    subject: str = ""
    when: tuple[datetime, datetime] | None = None
    when_words: str = ""
    #: "the one before the lighthouse": the image made just before (-1) or after (+1) the one `anchor` names
    anchor: str = ""
    step: int = 0

    @property
    def which_words(self) -> str:
        if self.which == -1:
            return "newest"
        if self.which == 1:
            return "oldest"
        if self.which > 0:
            return f"number {self.which} counting from the oldest"
        return f"number {-self.which} counting from the newest"


#: The words the parser itself reads; a slip of the keyboard in one of them ("my lst tiger image", "the
#: frist cat picture") is read as the word, since otherwise it would be taken for part of the subject.
_OWN_WORDS = ("last", "latest", "newest", "recent", "previous", "first", "earliest", "oldest", "original",
              "second", "third", "fourth", "fifth", "image", "images", "picture", "pictures", "photo", "photos",
              "before", "yesterday", "today", "morning", "week", "penultimate")


def _fix_slips(text: str) -> str:
    """Read a token one slip away from exactly one of the parser's words as that word. Real words are left
    alone (a thing the lexicon knows, or another English word); a token under 5 letters only counts as a
    slip when a letter is missing or two are swapped, so "fast" and "lost" never become "last"."""
    lex = lexicon()
    out = []
    for token in text.split(" "):
        if (len(token) >= 3 and token.isalpha() and token not in _OWN_WORDS and not lex.concepts_of(token)
                and token not in lex.words and lex.lemma(token) not in lex.words):
            fixes = {word for word in _OWN_WORDS if _one_slip(token, word, any_edit=len(token) >= 5)}
            if len(fixes) == 1:
                token = fixes.pop()
        out.append(token)
    return " ".join(out)


def _one_slip(token: str, word: str, any_edit: bool) -> bool:
    if len(token) == len(word) - 1:  # a letter missing
        return any(word[:i] + word[i + 1:] == token for i in range(len(word)))
    if len(token) == len(word):
        diff = [i for i in range(len(word)) if token[i] != word[i]]
        if len(diff) == 2 and diff[1] == diff[0] + 1 and token[diff[0]] == word[diff[1]] \
                and token[diff[1]] == word[diff[0]]:
            return True  # two letters swapped
        return any_edit and len(diff) == 1  # one letter wrong
    return any_edit and len(token) == len(word) + 1 and any(
        token[:i] + token[i + 1:] == word for i in range(len(token)))  # a letter doubled or stray


def parse_phrase(words: str, now: datetime | None = None) -> Phrase:
    """Read `words` (see the module docstring); `now` is an aware local time (default: the local clock)."""
    text = _fix_slips(" ".join(words.lower().replace("’", "'").split()).strip(" .!?,;:\"'"))
    relative = re.fullmatch(r"(?:the\s+)?(?:one|image|picture|pic|photo)?\s*(?:i\s+made\s+|you\s+made\s+)?(?:just\s+)?"
                            r"(before|after)\s+(?!that\b|this\b|it\b|the\s+(?:previous|last)\s+one\b)(.+)", text)
    if relative:
        anchor = parse_phrase(relative.group(2), now)
        if anchor.subject:
            return Phrase(text=text, subject=anchor.subject, when=anchor.when, when_words=anchor.when_words,
                          which=anchor.which, anchor=anchor.subject,
                          step=-1 if relative.group(1) == "before" else 1)
    rest = f" {text} "
    which: int | None = None
    for pattern, fixed in _FROM_NEWEST:
        m = re.search(pattern, rest)
        if m:
            if fixed is None:
                word = next(g for g in m.groups() if g)
                which = -(_ORDINALS.get(word, 2))
            else:
                which = fixed
            rest = rest[:m.start()] + " " + rest[m.end():]
            break
    if which is None:
        m = re.search(_OLDEST, rest)
        if m:
            which = 1
            ordinal = re.search(r"\b(second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|2nd|3rd|4th|5th)\b",
                                rest)
            if ordinal:
                which = _ORDINALS[ordinal.group(1)]
                rest = rest[:ordinal.start()] + " " + rest[ordinal.end():]
        else:
            ordinal = re.search(r"\b(second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|2nd|3rd|4th|5th)\b",
                                rest)
            if ordinal:
                which = _ORDINALS[ordinal.group(1)]
                rest = rest[:ordinal.start()] + " " + rest[ordinal.end():]
    before_that = which == -2 and bool(re.search(r"before (?:that|this|it)", text))
    when = None
    when_words = ""
    for pattern, key in _TIME_WORDS:
        m = re.search(pattern + r"(?:'s)?", rest)
        if m:
            when = _window(key, m, now or datetime.now().astimezone())
            when_words = m.group(0).strip()
            rest = rest[:m.start()] + " " + rest[m.end():]
            break
    session = before_that or bool(_SESSION.search(rest))
    rest = _protect_compounds(rest)
    subject = " ".join(_FILLER.sub(" ", rest).split()).replace("_", " ")
    subject = re.sub(r"^(?:and|or|to|in|at|on|for|by)\b\s*|\s*\b(?:and|or|to|in|at|on|for|by)$", "", subject)
    return Phrase(text=text, which=-1 if which is None else which, session=session and not subject,
                  subject=subject.strip(), when=when, when_words=when_words)


def _protect_compounds(text: str) -> str:
    """Join the words of multi-word lexicon entries ("ship in a bottle") so filler removal keeps them whole."""
    from context_server.domain.memory.lexicon import lexicon, tokens

    words = tokens(text)
    out = []
    for unit in lexicon().units(text):
        span = words[unit.start:unit.end]
        out.append("_".join(span) if len(span) > 1 else span[0])
    return " " + " ".join(out) + " "


def _window(key: str, m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    if key == "yesterday":
        return today - day, today
    if key == "last_night":
        return today - day + timedelta(hours=17), today + timedelta(hours=6)
    if key == "this_morning":
        return today, today + timedelta(hours=12)
    if key == "this_afternoon":
        return today + timedelta(hours=12), today + timedelta(hours=18)
    if key == "this_evening":
        return today + timedelta(hours=17), today + day
    if key == "today":
        return today, today + day
    if key == "this_week":
        return today - timedelta(days=today.weekday()), today + day
    if key == "last_week":  # about a week ago: the two weeks before yesterday (yesterday is "yesterday")
        return today - 14 * day, today - day
    if key == "last_month":
        return today - 62 * day, today
    raw = m.group(1)
    n = _NUMBERS.get(raw) or int(raw)
    return today - n * day, today - (n - 1) * day

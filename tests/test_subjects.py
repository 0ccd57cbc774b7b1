"""The pieces references and styles are decided with: the phrase parser, the subject lexicon and the reading
of a style memory (when it applies, where it goes, the words the provider gets). No model, no server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from context_server.domain.memory.lexicon import lexicon
from context_server.domain.memory.phrases import parse_phrase
from context_server.domain.memory.scope import read_style
from context_server.domain.memory.styles import compose_negative, compose_prompt, media_of

NOW = datetime(2026, 3, 12, 15, 0, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(("words", "which", "session", "subject"), [
    ("my last spaceship image", -1, False, "spaceship"),
    ("my first cat image", 1, False, "cat"),
    ("my oldest portrait", 1, False, "portrait"),
    ("my second dog picture", 2, False, "dog"),
    ("second to last spaceship", -2, False, "spaceship"),
    ("the one you just made", -1, True, ""),
    ("the previous one", -1, True, ""),
    ("it", -1, True, ""),
    ("that one", -1, True, ""),
    ("the one before that", -2, True, ""),
    ("my first image", 1, False, ""),
    ("the noodle soup one", -1, False, "noodle soup"),
    ("the ramen picture from before", -1, False, "ramen"),
    ("the blue spaceship", -1, False, "blue spaceship"),
    ("use my last dog image again", -1, False, "dog"),
])
def test_a_phrase_is_read_into_which_where_and_what(words: str, which: int, session: bool, subject: str) -> None:
    phrase = parse_phrase(words, now=NOW)
    assert (phrase.which, phrase.session, phrase.subject) == (which, session, subject)


def test_before_and_after_name_the_image_next_to_another() -> None:
    phrase = parse_phrase("the one before the lighthouse", now=NOW)
    assert (phrase.anchor, phrase.step, phrase.which) == ("lighthouse", -1, -1)
    assert parse_phrase("the image after my first cat picture", now=NOW).step == 1
    assert parse_phrase("the one before that", now=NOW).anchor == ""


def test_time_words_are_windows_of_the_local_day() -> None:
    today = NOW.replace(hour=0)
    assert parse_phrase("the bike from yesterday", now=NOW).when == (today - timedelta(days=1), today)
    morning = parse_phrase("this morning's bike image", now=NOW)
    assert morning.when == (today, today + timedelta(hours=12)) and morning.subject == "bike"
    week = parse_phrase("my bicycle picture from last week", now=NOW)
    assert week.when == (today - timedelta(days=14), today - timedelta(days=1)) and week.subject == "bicycle"
    assert parse_phrase("the ship in a bottle", now=NOW).subject == "ship in a bottle"


@pytest.mark.parametrize(("text", "subject", "expected"), [
    ("a corgi running on the beach", "dog", True),
    ("a golden retriever puppy", "puppy", True),
    ("a dachshund on a sofa", "puppy", False),
    ("a hot dog with mustard", "dog", False),
    ("a hot dog with mustard", "food", True),
    ("a dogwood tree in bloom", "dog", False),
    ("a catfish in a pond", "cat", False),
    ("a black cat in the moonlight", "cat", True),
    ("a dragon fruit smoothie bowl", "dragon", False),
    ("a ship in a bottle on a dusty shelf", "spaceship", False),
    ("the Space Needle in Seattle", "spaceship", False),
    ("a sleek silver starship", "spaceship", True),
    ("an astronaut on the moon", "space", True),
    ("a steaming bowl of ramen", "food", True),
    ("a steaming bowl of ramen", "noodle soup", True),
    ("a minimalist emblem for a cycling club", "logo", True),
    ("a wordmark for a startup", "logo", True),
    ("a flag for a fictional country", "logo", False),
    ("a corporate headshot", "portrait", True),
    ("a mountain lake panorama", "landscape", True),
    ("a cat asleep in the sun", "landscape", False),
    ("a busy crosswalk in Tokyo", "street", True),
    ("a Scandinavian living room", "interior", True),
])
def test_an_image_is_its_subject_or_a_kind_of_it_never_a_look_alike(text: str, subject: str, expected: bool) -> None:
    lex = lexicon()
    senses = lex.terms.get(subject) or lex.concepts_of(subject)
    assert senses, subject
    assert lex.about(lex.analyse(text), senses) is expected


def test_compounds_are_one_unit_and_plurals_their_word() -> None:
    lex = lexicon()
    assert [u.text for u in lex.units("two hot dogs and golden retriever puppies")] == [
        "two", "hot dog", "and", "golden retriever", "puppy"]
    assert lex.lemma("mice") == "mouse" and lex.correct("spacehsip") == "spaceship"


@pytest.mark.parametrize(("content", "applies_to", "placement", "phrase"), [
    ("I always want my images in a soft watercolour style", "always", "prompt", "soft watercolour style"),
    ("For logos I want flat vector art with a maximum of two colors", "logos", "prompt",
     "flat vector art, at most two colors"),
    ("When drawing portraits use soft rim lighting", "portraits", "prompt", "soft rim lighting"),
    ("my landscape photos should be muted", "landscape", "prompt", "muted"),
    ("Food shots: overhead angle on a dark slate background", "food", "prompt",
     "overhead angle on a dark slate background"),
    ("Draw cats chubby and fluffy", "cats", "prompt", "chubby and fluffy"),
    ("never use neon colours", "always", "negative", "neon colours"),
    ("Please, no text or lettering in any image", "always", "negative", "text, lettering"),
    ("avoid gradients", "always", "negative", "gradients"),
    ("brand palette: teal and coral", "always", "prompt", "teal and coral"),
    ("35mm film grain", "always", "prompt", "35mm film grain"),
])
def test_a_style_memory_says_when_it_applies_and_what_the_provider_gets(
        content: str, applies_to: str, placement: str, phrase: str) -> None:
    assert read_style(content) == (read_style(content).__class__(applies_to, placement, phrase))


def test_a_stated_applies_to_wins_over_the_words() -> None:
    assert read_style("geometric shapes, thick outlines", "logos").applies_to == "logos"
    assert read_style("For logos I want flat vector art", "every image").applies_to == "always"


def test_prompts_get_phrases_without_doubled_punctuation_and_negatives_merge() -> None:
    assert compose_prompt("a harbour at dusk.", ["soft watercolour style"]) == "a harbour at dusk, soft watercolour style"
    assert compose_prompt("a cat", []) == "a cat"
    assert compose_negative("blurry", ["neon colours", "text, Blurry"]) == "blurry, neon colours, text"
    assert media_of("soft watercolour style") == {"watercolour"}
    assert media_of("flat vector art, at most two colors") == {"flat vector"}


@pytest.mark.parametrize(("words", "which", "subject"), [
    ("my lst tiger image", -1, "tiger"),
    ("the frist cat picture", 1, "cat"),
    ("my latset robot imgae", -1, "robot"),
    ("my oldets owl photo", 1, "owl"),
    ("the lost kitten", -1, "lost kitten"),  # real words stay: "lost" and "fast" are not slips of "last"
    ("my last fast car", -1, "fast car"),
    ("my sleek spaceship", -1, "sleek spaceship"),
])
def test_a_slip_in_the_words_the_parser_reads_is_read_as_the_word(words: str, which: int, subject: str) -> None:
    phrase = parse_phrase(words, now=NOW)
    assert (phrase.which, phrase.subject) == (which, subject)


def test_real_words_are_never_spell_corrected_into_things() -> None:
    lex = lexicon()
    assert lex.correct("spacehsip") == "spaceship" and lex.correct("dargon") == "dragon"
    assert lex.correct("sleek") is None and lex.correct("brook") is None

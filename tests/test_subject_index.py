"""The derived subject tables (migration m013) that let references and styles read only candidate rows:
they stay in step with every write, and the choices made through them are the choices made by reading
every row (the way rows stored before them are still read until the warm-up fills them in)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from context_server.adapters.store import Store
from context_server.domain.memory.references import References, describe_image, fill_subjects
from context_server.domain.memory.service import Memories
from context_server.domain.memory.styles import StyleSelector, fill_style_keys
from context_server.domain.sessions import Session
from context_server.errors import NotFound

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def add_image(store: Store, user: str, prompt: str, minute: int, *, parent: str | None = None,
              incognito: bool = False) -> str:
    """An image row as the generation service writes it (description and subjects included)."""
    image_id = secrets.token_hex(16)
    at = (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with store.write() as db:
        db.table("images").insert({
            "id": image_id, "user_id": user, "job_id": None, "parent_id": parent, "prompt": prompt,
            "final_prompt": prompt, "negative_prompt": None, "provider": "placeholder", "model": "placeholder-1",
            "seed": 1, "width": 64, "height": 64, "format": "png", "path": "unused.png", "applied": "{}",
            "incognito": int(incognito), "created_at": at, "session_id": None,
            **describe_image(store, user, prompt, parent, "edit" if parent else "generate"),
        })
    return image_id


def session(user: str) -> Session:
    return Session(id="s-" + user, user_id=user)


def indexed(store: Store, image_id: str) -> int:
    return int(store.one("select count(*) as n from image_subjects where image_id = ?", [image_id])["n"])


def test_image_subjects_follow_inserts_updates_deletes_and_skip_incognito(store: Store) -> None:
    dog = add_image(store, "ann", "a corgi on a beach", 0)
    secret = add_image(store, "ann", "a corgi in the snow", 1, incognito=True)
    assert indexed(store, dog) > 3 and indexed(store, secret) == 0
    refs = References(store, lambda user, query, limit: [])
    assert refs.resolve("ann", session("ann"), "my last dog image").image_id == dog

    with store.write() as db:  # a new description (another lexicon version) replaces the rows
        db.execute("update images set subjects = ' 1 ' where id = ?", [dog])
    assert indexed(store, dog) == 1
    with store.write() as db:
        db.execute("update images set subjects = null where id = ?", [dog])
    assert indexed(store, dog) == 0
    assert fill_subjects(store) == 1 and indexed(store, dog) > 3

    with store.write() as db:
        db.execute("delete from images where id = ? and user_id = ?", [dog, "ann"])
    assert indexed(store, dog) == 0
    with pytest.raises(NotFound, match="you have no images yet"):  # the incognito one is never offered
        refs.resolve("ann", session("ann"), "my last dog image")


@pytest.mark.parametrize("described", [True, False], ids=["through the index", "rows read one by one"])
def test_which_one_counts_every_match_and_lists_the_nearest(store: Store, described: bool) -> None:
    """Twelve dogs among other images: the index reads only the window the choice needs, yet the reason
    counts all twelve, and the answer is the one reading every row gives."""
    dogs = [add_image(store, "ann", f"a {breed} in a park, photo {i}", i * 2)
            for i, breed in enumerate(["corgi", "beagle", "poodle", "husky"] * 3)]
    for i in range(20):
        add_image(store, "ann", f"a hot dog stand at night {i}", i * 2 + 1)
    add_image(store, "bob", "a corgi that is bob's", 100)
    if not described:  # as if stored before descriptions were: checked row by row, same answers
        with store.write() as db:
            db.execute("update images set subjects = null where user_id = 'ann'")
    refs = References(store, lambda user, query, limit: [])
    ann = session("ann")

    newest = refs.resolve("ann", ann, "my last dog image")
    assert newest.image_id == dogs[-1] and newest.reason == "newest of 12 dog images"
    assert [a["image_id"] for a in newest.alternatives] == dogs[-2:-7:-1]
    first = refs.resolve("ann", ann, "my first dog image")
    assert first.image_id == dogs[0] and first.reason == "oldest of 12 dog images"
    second = refs.resolve("ann", ann, "my second dog picture")
    assert second.image_id == dogs[1]
    assert [a["image_id"] for a in second.alternatives][:2] == [dogs[0], dogs[2]]
    assert refs.resolve("ann", ann, "second to last dog").image_id == dogs[-2]
    assert refs.resolve("ann", ann, "my tenth dog image").image_id == dogs[9]
    assert refs.resolve("ann", ann, "my third husky image").image_id == dogs[11]
    with pytest.raises(NotFound, match="only 3 matching images"):
        refs.resolve("ann", ann, "my fourth husky image")
    assert refs.resolve("ann", ann, "my last image").reason == "newest of your 32 images"


def test_words_beside_the_thing_are_checked_after_the_index(store: Store) -> None:
    silver = add_image(store, "ann", "a sleek silver starship docking", 0)
    add_image(store, "ann", "a rusty cargo spaceship", 1)
    navy = add_image(store, "ann", "a navy blue spacecraft over Saturn", 2)
    red = add_image(store, "ann", "make it red", 3, parent=silver)
    refs = References(store, lambda user, query, limit: [])
    ann = session("ann")
    assert refs.resolve("ann", ann, "the blue spaceship").image_id == navy  # a shade counts as its colour
    assert refs.resolve("ann", ann, "the red spaceship").image_id == red  # an edit keeps its source's subject
    assert refs.resolve("ann", ann, "the sleek spaceship").image_id == red
    assert refs.resolve("ann", ann, "the silver spaceship").image_id == silver  # the edit is red now
    with pytest.raises(NotFound):
        refs.resolve("ann", ann, "the green spaceship")


def style_ids(selector: StyleSelector, user: str, prompt: str, strength: str = "light") -> list[str]:
    return [s.memory_id for s in selector.styles_for(user, "s-" + user, prompt, strength).styles]


def test_style_keys_follow_saves_updates_and_deletes(memories: Memories, store: Store) -> None:
    selector = StyleSelector(store)
    logo = memories.save("ann", "For logos I want flat vector art with two colours", "style").memory_id
    steam = memories.save("ann", "Zeppelins should look steampunk and brass", "style").memory_id
    note = memories.save("ann", "my cat is called Miso", "note").memory_id
    assert style_ids(selector, "ann", "an emblem for a cycling club") == [logo]
    assert style_ids(selector, "ann", "a zeppelin over London") == [steam]  # a subject the lexicon lacks
    assert style_ids(selector, "ann", "a cat on a sofa") == []
    assert store.one("select count(*) as n from style_subjects where memory_id = ?", [note])["n"] == 0

    memories.update("ann", logo, applies_to="portraits")
    assert style_ids(selector, "ann", "an emblem for a cycling club") == []
    assert style_ids(selector, "ann", "a headshot of a CEO") == [logo]
    memories.update("ann", logo, content="For maps use muted earth tones")
    assert style_ids(selector, "ann", "a treasure map of an island") == [logo]
    memories.delete("ann", logo)
    assert store.one("select count(*) as n from style_subjects where memory_id = ?", [logo])["n"] == 0
    assert style_ids(selector, "bob", "a zeppelin over London") == []  # another user's styles never apply


def test_styles_stored_before_their_keys_apply_the_same_and_are_filled_in(memories: Memories,
                                                                         store: Store) -> None:
    """Old rows (no scope, no keys: what a database from before issue 13 holds) are read one by one with
    the same answers, the strength's cap counts them with the keyed ones, and the warm-up fills them in."""
    selector = StyleSelector(store)
    saved: list[str] = []
    for i, text in enumerate(["For logos use thin outlines", "Logos should be monochrome",
                              "For logos I like rounded corners", "For logos add a subtle grain",
                              "I always want warm light", "never use neon colours"]):
        saved.append(memories.save("ann", text, "style").memory_id)
        with store.write() as db:  # distinct, increasing times: newest last
            db.execute("update memories set updated_at = ? where id = ?", [f"2026-01-0{i + 1}T00:00:00.000000Z",
                                                                           saved[-1]])
    prompt = "a logo for a bakery"
    before = selector.styles_for("ann", "s-ann", prompt, "light")
    expected = [saved[5], saved[4], saved[3], saved[2], saved[1]]  # 3 subject styles (newest), always, negative
    assert sorted(s.memory_id for s in before.styles) == sorted(expected)

    with store.write() as db:  # half of them as an old version stored them
        for memory_id in saved[1::2]:
            db.execute("update memories set applies_to = null, placement = null, prompt_phrase = null, "
                       "subject_keys = null where id = ?", [memory_id])
    mixed = selector.styles_for("ann", "s-ann", prompt, "light")
    assert [(s.memory_id, s.phrase, s.placement) for s in mixed.styles] == [
        (s.memory_id, s.phrase, s.placement) for s in before.styles]
    assert fill_style_keys(store) == 3
    assert store.one("select count(*) as n from memories where kind = 'style' and subject_keys is null")["n"] == 0
    after = selector.styles_for("ann", "s-ann", prompt, "strong")
    assert {s.memory_id for s in after.styles} == set(saved)

"""Memories: save/list/search/update/delete, isolation between users, sanitising, merging, sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from context_server.adapters.embedder import Embedder, cosine
from context_server.adapters.store import Store
from context_server.domain.memory.service import MERGE_SIMILARITY, Memories
from context_server.domain.search.indexing import Indexer
from context_server.errors import InvalidInput, NotFound

# Measured with all-MiniLM-L6-v2: a rewording just above the merge threshold, a near-antonym just below.
ABOVE = ("I prefer watercolor illustrations", "Watercolor illustrations are my preference")  # ~0.927
BELOW = ("Use a warm pastel color palette", "Use a cool pastel color palette")  # ~0.916


def count(store: Store, user_id: str = "ann") -> int:
    row = store.one("SELECT count(*) AS n FROM memories WHERE user_id = ?", (user_id,))
    return int(row["n"]) if row else 0


def test_save_get_update_delete_round_trip(memories: Memories) -> None:
    saved = memories.save("ann", "Prefers cinematic lighting", kind="style", tags=["light"], pinned=True)
    assert (saved.kind, saved.scope, saved.merged_into) == ("style", "long_term", None)
    got = memories.get("ann", saved.memory_id)
    assert (got.content, got.tags, got.pinned, got.use_count, got.last_used_at) == (
        "Prefers cinematic lighting",
        ["light"],
        True,
        0,
        None,
    )
    updated = memories.update(
        "ann", saved.memory_id, content="Prefers moody cinematic lighting", pinned=False
    )
    assert updated.content == "Prefers moody cinematic lighting" and not updated.pinned
    assert updated.updated_at > got.updated_at and updated.created_at == got.created_at
    assert [m.memory_id for m in memories.search("ann", "moody light")] == [saved.memory_id]
    memories.delete("ann", saved.memory_id)
    with pytest.raises(NotFound):
        memories.get("ann", saved.memory_id)
    assert memories.search("ann", "moody light") == []


def test_an_update_with_nothing_to_change_is_refused(memories: Memories) -> None:
    saved = memories.save("ann", "x marks the spot")
    with pytest.raises(InvalidInput, match="nothing to update"):
        memories.update("ann", saved.memory_id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": "   \u200b\n "}, "content must contain some text"),
        ({"content": "x" * 2001}, "at most a memory can hold is 2000|the most a memory can hold is 2000"),
        ({"kind": "opinion"}, "kind must be one of style, preference, fact, note"),
        ({"scope": "forever"}, "scope must be one of long_term, session"),
        ({"tags": [f"t{i}" for i in range(21)]}, "at most 20 tags"),
        ({"tags": ["x" * 65]}, "at most 64 characters"),
        ({"tags": "one-string"}, "a list of strings"),
        ({"scope": "session"}, "needs a session"),
        ({"replaces": "no-such-id"}, "not found"),
    ],
)
def test_bad_input_is_refused_with_what_is_allowed_and_changes_nothing(
    memories: Memories, store: Store, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"content": "a perfectly fine memory", **kwargs}
    with pytest.raises((InvalidInput, NotFound), match=message):
        memories.save("ann", **args)  # type: ignore[arg-type]
    assert count(store) == 0 and store.one("SELECT 1 AS x FROM outbox") is None


def test_hidden_and_reordering_characters_are_stripped_on_save(memories: Memories) -> None:
    sneaky = "Use\u202e red\u2066 tones\u200b\x00\x07\n\tplease \U000e0049\U000e0067nore"
    saved = memories.save("ann", sneaky, tags=["a\u200bb", "  c\u202d  "])
    memory = memories.get("ann", saved.memory_id)
    assert memory.content == "Use red tones please nore"
    assert memory.tags == ["ab", "c"]


def test_lists_are_newest_first_and_paged_with_opaque_cursors(memories: Memories) -> None:
    saved = [
        memories.save("ann", f"fact number {i}: {'abcdefghij'[i] * 3}", kind="fact").memory_id
        for i in range(7)
    ]
    pages, cursor = [], None
    while True:
        page, cursor = memories.list("ann", limit=3, cursor=cursor)
        pages.append([m.memory_id for m in page])
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == list(reversed(saved))
    assert memories.list("ann", kind="style") == ([], None)
    with pytest.raises(InvalidInput, match="cursor is not valid"):
        memories.list("ann", cursor="not-a-cursor")
    with pytest.raises(InvalidInput, match="limit must be between 1 and 200"):
        memories.list("ann", limit=0)


def test_another_users_memory_behaves_exactly_like_a_missing_one(memories: Memories) -> None:
    theirs = memories.save("bob", "Bob likes brutalist architecture").memory_id
    memories.save("ann", "Ann likes gothic cathedrals")
    assert [m.content for m in memories.list("ann")[0]] == ["Ann likes gothic cathedrals"]
    assert all(m.memory_id != theirs for m in memories.search("ann", "brutalist architecture", limit=10))
    errors = []
    for call in (
        lambda mid: memories.get("ann", mid),
        lambda mid: memories.update("ann", mid, content="hijacked"),
        lambda mid: memories.delete("ann", mid),
        lambda mid: memories.save("ann", "replace it", replaces=mid),
    ):
        for memory_id in (theirs, "0" * 24):
            with pytest.raises(NotFound) as caught:
                call(memory_id)
            errors.append(str(caught.value).replace(memory_id, "ID"))
    assert len(set(errors)) == 1
    assert memories.get("bob", theirs).content == "Bob likes brutalist architecture"
    assert memories.mark_used("ann", [theirs]) == 0


def test_identical_text_after_normalising_is_merged(memories: Memories, store: Store) -> None:
    first = memories.save("ann", "Use warm colours.", kind="style", tags=["colour"])
    again = memories.save(
        "ann", "  use WARM   colours ", kind="style", tags=["palette", "colour"], pinned=True
    )
    assert again.merged_into == first.memory_id == again.memory_id
    merged = memories.get("ann", first.memory_id)
    assert merged.content == "Use warm colours." and merged.tags == ["colour", "palette"] and merged.pinned
    assert count(store) == 1
    other_kind = memories.save("ann", "use warm colours", kind="note")
    assert other_kind.merged_into is None and count(store) == 2


def test_merge_boundary_is_cosine_0_92(memories: Memories, embedder: Embedder, store: Store) -> None:
    above = cosine(*embedder.embed(list(ABOVE)))
    below = cosine(*embedder.embed(list(BELOW)))
    assert MERGE_SIMILARITY == 0.92
    assert 0.92 <= above < 0.94, above
    assert 0.90 < below < 0.92, below

    kept = memories.save("ann", ABOVE[0], kind="preference")
    assert memories.save("ann", ABOVE[1], kind="preference").merged_into == kept.memory_id
    memories.save("ann", BELOW[0], kind="style")
    assert memories.save("ann", BELOW[1], kind="style").merged_into is None
    assert count(store) == 3


def test_merging_also_works_in_a_process_without_the_index(
    store: Store, indexer: Indexer, make_indexer: Callable[..., Indexer]
) -> None:
    second = make_indexer()
    assert not second.take_index()
    lockless = Memories(store, second)
    kept = lockless.save("ann", ABOVE[0], kind="preference")
    assert lockless.save("ann", ABOVE[1], kind="preference").merged_into == kept.memory_id


def test_replaces_deletes_the_old_memory_and_its_index_entry(memories: Memories) -> None:
    old = memories.save("ann", "Always use a 4:3 aspect ratio", kind="preference")
    new = memories.save("ann", "Always use a 16:9 aspect ratio", kind="preference", replaces=old.memory_id)
    assert new.merged_into is None and new.memory_id != old.memory_id
    assert memories.get("ann", new.memory_id).replaces == old.memory_id
    with pytest.raises(NotFound):
        memories.get("ann", old.memory_id)
    assert [m.memory_id for m in memories.search("ann", "aspect ratio", limit=5)] == [new.memory_id]


def test_session_memories_stay_in_their_session_and_out_of_the_index(
    memories: Memories, indexer: Indexer
) -> None:
    lasting = memories.save("ann", "Likes foggy harbours", kind="style")
    here = memories.save(
        "ann", "For now: everything in sepia", kind="style", scope="session", session_id="s1"
    )
    memories.save("ann", "For now: everything in neon", kind="style", scope="session", session_id="s2")
    assert {m.memory_id for m in memories.list("ann", session_id="s1")[0]} == {
        lasting.memory_id,
        here.memory_id,
    }
    assert [m.memory_id for m in memories.list("ann", scope="session", session_id="s1")[0]] == [
        here.memory_id
    ]
    assert [m.memory_id for m in memories.list("ann")[0]] == [lasting.memory_id]
    assert indexer._index is not None and indexer._index.count("ann", "memories") == 1

    found = memories.search("ann", "sepia tone photos", session_id="s1")
    assert found[0].memory_id == here.memory_id and found[0].score is not None
    assert all("neon" not in m.content for m in memories.search("ann", "neon", session_id="s1"))
    assert memories.purge_session("ann", "s1") == 1
    assert [m.memory_id for m in memories.list("ann", session_id="s1")[0]] == [lasting.memory_id]


def test_search_ranks_by_meaning_filters_by_kind_and_scores_in_zero_to_one(memories: Memories) -> None:
    dog = memories.save("ann", "My dog is a black labrador called Ink", kind="fact")
    memories.save("ann", "Prefer flat vector illustrations", kind="style")
    memories.save("ann", "Budget is twenty dollars a month", kind="fact")
    results = memories.search("ann", "what breed is my pet?", limit=3)
    assert results[0].memory_id == dog.memory_id
    assert all(0.0 <= (m.score or 0) <= 1.0 for m in results)
    assert results == sorted(results, key=lambda m: m.score or 0, reverse=True)
    assert {m.kind for m in memories.search("ann", "illustrations", kind="fact", limit=5)} <= {"fact"}
    with pytest.raises(InvalidInput):
        memories.search("ann", "  \u202e ")


def test_mark_used_counts_and_pinned_lists_styles(memories: Memories) -> None:
    style = memories.save("ann", "Soft film grain", kind="style", pinned=True)
    memories.save("ann", "Hard shadows", kind="style")
    assert memories.mark_used("ann", [style.memory_id, style.memory_id]) == 1
    used = memories.get("ann", style.memory_id)
    assert used.use_count == 1 and used.last_used_at is not None
    assert [m.memory_id for m in memories.pinned("ann")] == [style.memory_id]

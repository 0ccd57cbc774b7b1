"""The outbox, drain, rebuild, repair and the searches without the index (stored vectors, FTS5), over real
SQLite, Chroma and the embedder."""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Callable

import pytest

from context_server.adapters.embedder import Embedder
from context_server.adapters.index import IndexDamaged, IndexLock, VectorIndex, collection_name
from context_server.adapters.store import Store, now_iso
from context_server.domain.health import check_index
from context_server.domain.search.indexing import INDEX_LAYOUT, Indexer
from context_server.settings import Settings

from .conftest import vector_index

MakeIndexer = Callable[..., Indexer]


def add_memory(
    store: Store, indexer: Indexer, user_id: str, content: str, *, scope: str = "long_term", kind: str = "style"
) -> str:
    """A memory row and its outbox entry in one transaction, as Memories writes them (no drain)."""
    memory_id = secrets.token_hex(8)
    now = now_iso()
    with store.write() as db:
        db.table("memories").insert(
            {
                "id": memory_id,
                "user_id": user_id,
                "content": content,
                "kind": kind,
                "scope": scope,
                "session_id": "s1" if scope == "session" else None,
                "created_at": now,
                "updated_at": now,
            }
        )
        indexer.enqueue(db, user_id, "memories", memory_id, "upsert", content)
    return memory_id


def add_image(store: Store, indexer: Indexer, user_id: str, prompt: str, *, incognito: bool = False) -> str:
    image_id = secrets.token_hex(8)
    with store.write() as db:
        db.table("images").insert(
            {
                "id": image_id,
                "user_id": user_id,
                "prompt": prompt,
                "path": f"/x/{image_id}.png",
                "incognito": int(incognito),
                "created_at": now_iso(),
            }
        )
        indexer.enqueue(db, user_id, "images", image_id, "upsert", prompt)
    return image_id


def outbox_size(store: Store) -> int:
    row = store.one("SELECT count(*) AS n FROM outbox")
    return int(row["n"]) if row else 0


def index_ids(settings: Settings, user_id: str, kind: str = "memories") -> set[str]:
    """What Chroma holds, read through a fresh client (only valid while no Indexer has it open elsewhere)."""
    index = vector_index(settings)
    try:
        collection = index._collection(user_id, kind)
        return set(collection.get(include=[])["ids"])
    finally:
        index.close()


def test_enqueue_outside_a_transaction_is_refused(store: Store, indexer: Indexer) -> None:
    with pytest.raises(RuntimeError, match=r"inside store\.write"):
        indexer.enqueue(store.db, "ann", "memories", "x", "upsert", "x")


def test_a_rolled_back_write_leaves_no_outbox_row(store: Store, indexer: Indexer) -> None:
    with pytest.raises(ZeroDivisionError), store.write() as db:
        indexer.enqueue(db, "ann", "memories", "x", "upsert", "x")
        1 / 0  # noqa: B018
    assert outbox_size(store) == 0


def test_drain_indexes_by_meaning_and_empties_the_outbox(store: Store, indexer: Indexer) -> None:
    dog = add_memory(store, indexer, "ann", "my golden retriever loves the beach")
    add_memory(store, indexer, "ann", "invoices are due on the first of the month")
    assert indexer.drain() == 2 and outbox_size(store) == 0
    hits = indexer.search("ann", "memories", "a puppy playing by the sea", 2)
    assert hits[0][0] == dog and hits[0][1] > hits[1][1] and 0.0 <= hits[1][1] <= hits[0][1] <= 1.0


def test_search_drains_first_so_a_write_is_found_at_once(store: Store, indexer: Indexer) -> None:
    wanted = add_memory(store, indexer, "ann", "render everything as isometric pixel art")
    assert [hit for hit, _ in indexer.search("ann", "memories", "pixel art", 1)] == [wanted]
    assert outbox_size(store) == 0


def test_the_background_drainer_indexes_writes_without_the_writer_waiting(store: Store, indexer: Indexer) -> None:
    indexer.start_draining()
    written = [add_memory(store, indexer, "ann", text) for text in (
        "paint skies in muted watercolour", "invoices are due on the first", "my dog is a corgi")]
    with indexer._work:  # while the drainer is busy, a write only wakes it and returns at once
        indexer.drain_soon()
        assert outbox_size(store) == 3
    deadline = time.monotonic() + 30
    while outbox_size(store) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outbox_size(store) == 0  # the drainer applied all three, without anyone searching
    hits = indexer.search("ann", "memories", "a welsh herding dog", 1)
    assert [hit for hit, _ in hits] == [written[2]]
    later = add_memory(store, indexer, "ann", "render everything as isometric pixel art")
    with indexer._work:  # the drainer cannot run: the search itself must drain the write first
        assert [hit for hit, _ in indexer.search("ann", "memories", "pixel art", 1)] == [later]
    indexer.close()
    assert indexer._drainer is not None
    indexer._drainer.join(10)
    assert not indexer._drainer.is_alive()


def test_a_crash_before_chroma_heard_is_repaired_by_the_next_start(
    settings: Settings, store: Store, make_indexer: MakeIndexer
) -> None:
    first = make_indexer()
    assert first.take_index()
    kept = add_memory(store, first, "ann", "soft watercolour washes")
    gone = add_memory(store, first, "ann", "thick impasto oil paint")
    first.drain()
    with store.write() as db:  # delete committed in SQLite; the process dies before draining it
        db.execute("DELETE FROM memories WHERE id = ?", [gone])
        first.enqueue(db, "ann", "memories", gone, "delete")
    late = add_memory(store, first, "ann", "charcoal sketches on grey paper")
    first.close()

    assert index_ids(settings, "ann") == {kept, gone}
    second = make_indexer()
    assert second.take_index()
    assert outbox_size(store) == 0
    second.close()
    assert index_ids(settings, "ann") == {kept, late}


def test_draining_the_same_rows_twice_changes_nothing(
    settings: Settings, store: Store, indexer: Indexer
) -> None:
    memory_id = add_memory(store, indexer, "ann", "neon cyberpunk alleys")
    rows = store.query("SELECT * FROM outbox")
    indexer.drain()
    with store.write() as db:  # as if the process died after Chroma accepted but before the outbox delete
        for row in rows:
            db.table("outbox").insert({k: v for k, v in row.items() if k != "id"})
    assert indexer.drain() == 1
    indexer.close()
    assert index_ids(settings, "ann") == {memory_id}


def test_only_indexable_items_reach_chroma(settings: Settings, store: Store, indexer: Indexer) -> None:
    keep = add_memory(store, indexer, "ann", "long term style")
    add_memory(store, indexer, "ann", "session only style", scope="session")
    shown = add_image(store, indexer, "ann", "a lighthouse at dusk")
    add_image(store, indexer, "ann", "a secret portrait", incognito=True)
    indexer.drain()
    indexer.close()
    assert index_ids(settings, "ann") == {keep}
    assert index_ids(settings, "ann", "images") == {shown}


def test_without_the_lock_a_second_process_writes_and_ranks_like_the_holder(
    store: Store, indexer: Indexer, make_indexer: MakeIndexer
) -> None:
    second = make_indexer()
    assert not second.take_index() and not second.uses_vectors
    memory_id = add_memory(store, second, "ann", "Draw the moon as a glowing paper lantern")
    assert second.drain() == 0 and outbox_size(store) == 1  # left for the holder
    hits = second.search("ann", "memories", "a light in the night sky", 5)  # by meaning: no word in common
    assert [hit for hit, _ in hits] == [memory_id] and 0.0 < hits[0][1] <= 1.0
    assert second.search("bob", "memories", "paper lantern moon", 5) == []

    held = indexer.search("ann", "memories", "a light in the night sky", 1)  # the holder drains, then answers
    assert [hit for hit, _ in held] == [memory_id] and held[0][1] == pytest.approx(hits[0][1], abs=1e-5)
    indexer.close()
    second.maintain()
    assert second.holds_index and second.uses_vectors


def test_both_processes_give_the_same_ranking_whoever_embedded_the_items(
    store: Store, indexer: Indexer, make_indexer: MakeIndexer
) -> None:
    """The holder ranks with Chroma, the other process with the vectors stored in SQLite: the same items in
    the same order with the same scores, for plain searches, the styles subset and candidate lists."""
    second = make_indexer()
    assert indexer.take_index() and not second.take_index()
    texts = ["muted watercolour landscapes", "bold neon cyberpunk streets", "pencil sketch of an old oak",
             "my cat Miso sleeps on the piano", "soft pastel portraits", "grainy black and white film"]
    ids = [add_memory(store, indexer if i % 2 else second, "ann", text, kind="style" if i < 5 else "note")
           for i, text in enumerate(texts)]
    images = [add_image(store, second, "ann", prompt) for prompt in ("a spaceship over a desert",
                                                                      "a rocket among the stars", "a bowl of ramen")]
    for query in ("gentle painting", "city at night", "a photo", "pets"):
        for kwargs in ({}, {"where": {"kind": "style"}}, {"candidates": ids[1:4]}):
            held = indexer.search("ann", "memories", query, 4, **kwargs)  # type: ignore[arg-type]
            other = second.search("ann", "memories", query, 4, **kwargs)  # type: ignore[arg-type]
            assert [hit for hit, _ in other] == [hit for hit, _ in held], (query, kwargs)
            assert [score for _, score in other] == pytest.approx([score for _, score in held], abs=1e-5)
    held = indexer.search("ann", "images", "space travel", 3)
    other = second.search("ann", "images", "space travel", 3)
    assert [hit for hit, _ in other] == [hit for hit, _ in held]
    assert [score for _, score in other] == pytest.approx([score for _, score in held], abs=1e-5)
    assert {hit for hit, _ in held[:2]} == set(images[:2])


def test_a_change_forgets_the_stored_vector_in_its_own_transaction(store: Store, indexer: Indexer) -> None:
    memory_id = add_memory(store, indexer, "ann", "ink wash mountains")
    indexer.drain()
    assert store.one("SELECT model FROM item_vectors WHERE item_id = ?", [memory_id]) == {
        "model": "all-MiniLM-L6-v2"}
    with store.write() as db:
        db.execute("UPDATE memories SET content = 'glossy chrome robots' WHERE id = ?", [memory_id])
        indexer.enqueue(db, "ann", "memories", memory_id, "upsert", "glossy chrome robots")
        assert db.execute("SELECT count(*) FROM item_vectors").fetchone()[0] == 0
    ranked = indexer.stored.rank("ann", "memories", "shiny metal machines", 1)  # re-embeds the new text
    assert [hit for hit, _ in ranked] == [memory_id] and ranked[0][1] > 0.4


def test_a_first_build_is_no_warning_even_after_a_process_stopped_during_it(
    settings: Settings, store: Store, make_indexer: MakeIndexer, caplog: pytest.LogCaptureFixture,
) -> None:
    first = make_indexer()
    add_memory(store, first, "ann", "linocut prints in two colours")
    with caplog.at_level("INFO"):
        assert first.take_index()
    assert [r.getMessage() for r in caplog.records if r.levelname != "INFO"] == []
    assert "building the search index for the first time" in caplog.text
    first.close()
    with store.write() as db:  # what a process stopped during its first build leaves: no index recorded
        db.execute("DELETE FROM index_meta WHERE key != 'rebuild_pending'")
        db.table("index_meta").upsert({"key": "rebuild_pending", "value": "1"}, pk="key")
    caplog.clear()
    again = make_indexer()
    with caplog.at_level("INFO"):
        assert again.take_index()
    assert [r.getMessage() for r in caplog.records if r.levelname != "INFO"] == []
    assert again.health()["state"] == "ok"


@pytest.mark.parametrize(("nasty", "finds"), [
    ('"unbalanced', False), ("NEAR(a b)", False), ("col:moon", True), ("moon*", True), ("AND OR NOT", False),
    ("-moon ^lantern", True), ("'", False), ('lantern" OR "x', True),
])
def test_fts_fallback_never_reads_user_text_as_syntax(
    store: Store, indexer: Indexer, nasty: str, finds: bool
) -> None:
    """Operators, column filters, prefixes and quotes are read as plain words: no FTS5 error, and a hit
    exactly when one of the words is in the memory."""
    memory_id = add_memory(store, indexer, "ann", "moon lantern")
    hits = indexer.text_search("ann", "memories", nasty, 5)
    assert [hit for hit, _ in hits] == ([memory_id] if finds else [])


def test_bm25_scores_are_mapped_into_zero_to_one_without_an_embedder(
    settings: Settings, store: Store, indexer: Indexer
) -> None:
    strong = add_memory(store, indexer, "ann", "lantern lantern lantern festival")
    weak = add_memory(store, indexer, "ann", "a festival with many stalls, food, music and one lantern")
    cold = Indexer(store, Embedder(threads=1), lambda: vector_index(settings))  # embedder never started
    hits = cold.text_search("ann", "memories", "lantern", 5)
    assert [hit for hit, _ in hits] == [strong, weak]
    assert 1.0 > hits[0][1] > hits[1][1] > 0.0


def test_a_different_recorded_model_triggers_a_full_rebuild(
    settings: Settings, store: Store, make_indexer: MakeIndexer
) -> None:
    first = make_indexer()
    first.take_index()
    memory_id = add_memory(store, first, "ann", "ukiyo-e woodblock waves")
    first.drain()
    first._index.upsert("ann", "memories", ["stale"], [[1.0] + [0.0] * 383], ["stale"], [{"kind": "x"}])  # type: ignore[union-attr]
    first.close()
    with store.write() as db:
        db.execute("UPDATE index_meta SET value = 'some-older-model' WHERE key = 'embed_model'")

    second = make_indexer()
    assert second.take_index()
    assert second.status()["recorded_model"] == "all-MiniLM-L6-v2"
    second.close()
    assert index_ids(settings, "ann") == {memory_id}  # rebuilt from SQLite, nothing from the old model


def test_a_deleted_chroma_directory_is_rebuilt_at_start(
    settings: Settings, store: Store, make_indexer: MakeIndexer
) -> None:
    first = make_indexer()
    first.take_index()
    memory_id = add_memory(store, first, "ann", "art deco posters with gold foil")
    image_id = add_image(store, first, "ann", "a zeppelin over a city")
    first.drain()
    first.close()
    shutil.rmtree(settings.chroma_path)

    second = make_indexer()
    assert second.take_index()
    assert [hit for hit, _ in second.search("ann", "memories", "gold art deco", 1)] == [memory_id]
    assert [hit for hit, _ in second.search("ann", "images", "airship", 1)] == [image_id]


def test_a_corrupt_chroma_directory_is_moved_aside_and_rebuilt(
    settings: Settings, store: Store, make_indexer: MakeIndexer
) -> None:
    first = make_indexer()
    first.take_index()
    memory_id = add_memory(store, first, "ann", "brutalist concrete towers")
    first.drain()
    first.close()
    (settings.chroma_path / "chroma.sqlite3").write_bytes(b"garbage" * 4096)

    second = make_indexer()
    assert second.take_index()
    assert (settings.home / "chroma.damaged").is_dir()
    assert [hit for hit, _ in second.search("ann", "memories", "concrete buildings", 1)] == [memory_id]


def test_a_server_stopping_mid_rebuild_leaves_the_index_alone_and_quiet(
    settings: Settings, store: Store, make_indexer: MakeIndexer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server stopped during its start-up warm-up exits while a worker thread is still rebuilding, and at
    interpreter shutdown Chroma fails ("can't register atexit after shutdown" from a lazy import). That
    failure must not be taken for a damaged index: no error logged, nothing moved aside, and the next start
    finishes the rebuild."""
    first = make_indexer()
    first.take_index()
    memory_id = add_memory(store, first, "ann", "brutalist concrete towers")
    first.drain()
    first.close()
    shutil.rmtree(settings.chroma_path)  # the next start must rebuild

    stopping = make_indexer()
    closer: list[threading.Thread] = []
    real_reset = VectorIndex.reset

    def reset_while_the_server_stops(index: VectorIndex, user_id: str | None = None) -> None:
        closer.append(threading.Thread(target=stopping.close))  # the server's shutdown, on its own thread
        closer[0].start()
        while not stopping._stopping:
            threading.Event().wait(0.01)
        raise IndexDamaged("vector index reset failed: can't register atexit after shutdown")

    monkeypatch.setattr(VectorIndex, "reset", reset_while_the_server_stops)
    with caplog.at_level("WARNING"):
        assert not stopping.take_index()
    closer[0].join(10)
    assert not closer[0].is_alive()
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")
            and "rebuilding" not in r.getMessage()] == []
    assert not (settings.home / "chroma.damaged").exists()

    monkeypatch.setattr(VectorIndex, "reset", real_reset)
    again = make_indexer()
    assert again.take_index()
    assert [hit for hit, _ in again.search("ann", "memories", "concrete buildings", 1)] == [memory_id]


def test_an_interrupted_rebuild_is_finished_at_the_next_start(
    settings: Settings, store: Store, make_indexer: MakeIndexer
) -> None:
    first = make_indexer()
    first.take_index()
    memory_id = add_memory(store, first, "ann", "gouache botanical plates")
    first.drain()
    first._index.reset()  # type: ignore[union-attr]  # rebuild got as far as wiping the index
    with store.write() as db:
        db.table("index_meta").upsert({"key": "rebuild_pending", "value": "1"}, pk="key")
    first.close()

    second = make_indexer()
    assert second.take_index()
    assert second.status()["damaged"] is False
    second.close()
    assert index_ids(settings, "ann") == {memory_id}
    assert store.one("SELECT value FROM index_meta WHERE key = 'rebuild_pending'") is None


def test_rebuild_reports_progress_and_counts_every_indexable_item(store: Store, indexer: Indexer) -> None:
    for i in range(5):
        add_memory(store, indexer, "ann" if i % 2 else "bob", f"memory number {i}")
    add_image(store, indexer, "bob", "a castle")
    seen: list[tuple[int, int]] = []
    assert indexer.rebuild(progress=lambda done, total: seen.append((done, total))) == 6
    assert seen[-1] == (6, 6)
    assert outbox_size(store) == 0


def test_a_failure_in_use_ranks_with_the_stored_vectors_and_maintain_repairs_it(store: Store, indexer: Indexer) -> None:
    memory_id = add_memory(store, indexer, "ann", "stained glass windows with cobalt blue")
    indexer.drain()
    assert indexer._index is not None
    indexer._index._client_.close()  # the client dies under us, as a broken index would fail
    hits = indexer.search("ann", "memories", "cobalt glass", 3)
    assert [hit for hit, _ in hits] == [memory_id]  # answered from the vectors stored in SQLite
    assert indexer.status()["damaged"] and not indexer.uses_vectors

    indexer.maintain()
    assert indexer.uses_vectors and not indexer.status()["damaged"]
    assert [hit for hit, _ in indexer.search("ann", "memories", "blue church windows", 1)] == [memory_id]


def test_the_first_search_waits_for_the_warm_up_that_is_taking_the_index(
    settings: Settings, store: Store, embedder: Embedder
) -> None:
    """The warm-up thread takes the index while the client's first search arrives: the search must wait
    and answer by meaning, not by keywords (FTS5 would find nothing for "pet breed" here)."""
    opening = threading.Event()
    release = threading.Event()

    def slow_open() -> VectorIndex:
        opening.set()
        release.wait(10)
        return vector_index(settings)

    idx = Indexer(store, embedder, slow_open, IndexLock(settings.home / "chroma.lock"))
    try:
        dog = add_memory(store, idx, "ann", "My dog is a black labrador called Ink")
        warm_up = threading.Thread(target=idx.take_index)
        warm_up.start()
        assert opening.wait(10)
        found: list[list[tuple[str, float]]] = []
        searcher = threading.Thread(target=lambda: found.append(idx.search("ann", "memories", "pet breed", 3)))
        searcher.start()
        searcher.join(0.3)
        assert searcher.is_alive(), "the search answered before the index was taken"
        release.set()
        warm_up.join(30)
        searcher.join(30)
        assert [item for item, _ in found[0]] == [dog]
    finally:
        release.set()
        idx.close()


# --- the styles collection (a subset of memories) --------------------------------------------------------


def styles_found(indexer: Indexer, query: str) -> list[str]:
    return [hit for hit, _ in indexer.search("ann", "memories", query, 10, where={"kind": "style"})]


def test_style_memories_follow_their_kind_into_and_out_of_the_styles_collection(
    store: Store, indexer: Indexer
) -> None:
    style = add_memory(store, indexer, "ann", "muted watercolour landscapes")
    note = add_memory(store, indexer, "ann", "watercolour paper is in the top drawer", kind="note")
    add_memory(store, indexer, "ann", "watercolour for this chat only", scope="session")
    assert styles_found(indexer, "watercolour") == [style]
    assert set(dict(indexer.search("ann", "memories", "watercolour", 10))) == {style, note}

    with store.write() as db:  # the style becomes a note, the note a style (as update_memory writes it)
        db.execute("UPDATE memories SET kind = 'note' WHERE id = ?", [style])
        db.execute("UPDATE memories SET kind = 'style' WHERE id = ?", [note])
        indexer.enqueue(db, "ann", "memories", style, "upsert")
        indexer.enqueue(db, "ann", "memories", note, "upsert")
    assert styles_found(indexer, "watercolour") == [note]

    with store.write() as db:
        db.execute("DELETE FROM memories WHERE id = ?", [note])
        indexer.enqueue(db, "ann", "memories", note, "delete")
    assert styles_found(indexer, "watercolour") == []
    assert styles_found(indexer, "watercolour") == [hit for hit, _ in indexer.text_search(
        "ann", "memories", "watercolour", 10, where={"kind": "style"})]  # the FTS fallback agrees


def test_items_embedded_by_the_caller_reach_the_styles_collection_too(
    store: Store, indexer: Indexer, embedder: Embedder
) -> None:
    style = add_memory(store, indexer, "ann", "bold art deco geometry")
    note = add_memory(store, indexer, "ann", "the gallery opens in May", kind="note")
    texts = {style: "bold art deco geometry", note: "the gallery opens in May"}
    vectors = embedder.embed(list(texts.values()))
    items = {item_id: (text, vector) for (item_id, text), vector in zip(texts.items(), vectors, strict=True)}
    assert indexer.index_embedded("ann", "memories", items) == 2
    assert outbox_size(store) == 0
    assert styles_found(indexer, "art deco") == [style]


def test_an_index_built_under_an_older_layout_is_rebuilt_once(
    settings: Settings, store: Store, make_indexer: MakeIndexer
) -> None:
    first = make_indexer()
    first.take_index()
    style = add_memory(store, first, "ann", "grainy film look")
    first.drain()
    first._index._client.delete_collection(collection_name("ann", "styles"))  # type: ignore[union-attr]
    with store.write() as db:  # what a data directory indexed before the styles collection existed looks like
        db.execute("DELETE FROM index_meta WHERE key = 'layout'")
    first.close()
    looked = make_indexer()
    assert looked.health()["state"] == "layout_changed"
    assert check_index(looked).status == "pending"  # doctor: the next start rebuilds it by itself

    second = make_indexer()
    assert second.take_index()
    assert second._meta("layout") == INDEX_LAYOUT and not second.check_model()  # rebuilt, and only once
    second.close()
    assert index_ids(settings, "ann", "styles") == {style}
    assert index_ids(settings, "ann") == {style}

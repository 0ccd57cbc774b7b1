"""The in-process copies of the collections in use (adapters/vector_cache.py), against the real Chroma they
copy: same answers, kept in step by every write, within their budget, and never used where they could go
stale."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest

from context_server.adapters.index import VectorIndex, collection_name
from context_server.adapters.vector_cache import VectorCache
from context_server.app import App
from context_server.domain.memory.service import Memories
from context_server.domain.search.indexing import Indexer
from context_server.settings import Settings

from .conftest import vector_index

DIM = 384


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.fixture
def index(settings: Settings) -> Iterator[VectorIndex]:
    idx = vector_index(settings)
    yield idx
    idx.close()


def fill(index: VectorIndex, user: str, n: int, seed: int = 1) -> tuple[list[str], np.ndarray]:
    ids = [f"{user}-{i}" for i in range(n)]
    vs = vectors(n, seed)
    for start in range(0, n, 500):
        index.upsert(user, "images", ids[start:start + 500], vs[start:start + 500].tolist(),
                     [f"doc {i}" for i in ids[start:start + 500]])
    return ids, vs


def loaded(index: VectorIndex, user: str, probe: list[float]) -> None:
    """Query once (Chroma answers and marks the collection wanted), then load as maintenance does."""
    index.query(user, "images", probe, 5)
    assert index.load_wanted() >= 1
    assert index.cache is not None and index.cache.cached(collection_name(user, "images"))


def test_copied_collections_answer_exactly_with_chromas_scores(index: VectorIndex) -> None:
    ids, vs = fill(index, "ann", 1200)
    probes = [*vectors(25, seed=9).tolist(), vs[7].tolist()]
    from_chroma = [index.query("ann", "images", p, 10) for p in probes]
    assert index.load_wanted() == 1
    from_copy = [index.query("ann", "images", p, 10) for p in probes]
    for probe, chroma, copy in zip(probes, from_chroma, from_copy, strict=True):
        exact = np.argsort(-(vs @ np.asarray(probe, dtype=np.float32)))[:10]
        assert [h.id for h in copy] == [ids[i] for i in exact]  # exact, where HNSW may miss a neighbour
        chroma_scores = {h.id: h.score for h in chroma}
        shared = [h for h in copy if h.id in chroma_scores]
        assert len(shared) >= 5
        assert [h.score for h in shared] == pytest.approx([chroma_scores[h.id] for h in shared], abs=1e-5)
    assert from_copy[-1][0].id == "ann-7" and from_copy[-1][0].score == pytest.approx(1.0, abs=1e-5)
    # restricted to some ids, as reference resolution asks
    some = [f"ann-{i}" for i in (3, 50, 999, 7)] + ["not-there"]
    assert index.query("ann", "images", vs[50].tolist(), 2, ids=some)[0].id == "ann-50"
    assert {h.id for h in index.query("ann", "images", vs[50].tolist(), 10, ids=some)} == set(some) - {"not-there"}


def test_writes_after_loading_are_answered_at_once(index: VectorIndex) -> None:
    _, vs = fill(index, "bob", 300)
    loaded(index, "bob", vs[0].tolist())
    fresh = vectors(1, seed=42)[0]
    index.upsert("bob", "images", ["bob-new"], [fresh.tolist()], ["new"])
    assert index.query("bob", "images", fresh.tolist(), 1)[0].id == "bob-new"
    index.upsert("bob", "images", ["bob-5"], [fresh.tolist()], ["moved"])  # an existing id, a new vector
    assert {h.id for h in index.query("bob", "images", fresh.tolist(), 2)} == {"bob-new", "bob-5"}
    index.delete("bob", "images", ["bob-new", "bob-5"])
    assert all(h.id not in {"bob-new", "bob-5"} for h in index.query("bob", "images", fresh.tolist(), 300))
    assert index.query("bob", "images", vs[9].tolist(), 1)[0].id == "bob-9"
    assert len(index.query("bob", "images", vs[9].tolist(), 1000)) == 299
    assert index.cache is not None and index.cache.cached(collection_name("bob", "images"))


def test_a_write_during_a_load_throws_the_stale_copy_away(index: VectorIndex) -> None:
    ids, vs = fill(index, "cat", 50)
    index.query("cat", "images", vs[0].tolist(), 1)
    cache = index.cache
    assert cache is not None
    name = collection_name("cat", "images")
    epoch = cache.epoch(name)  # the loader reads Chroma here ...
    index.delete("cat", "images", ["cat-0"])  # ... a request deletes an image meanwhile ...
    assert not cache.install(name, epoch, ids, vs)  # ... and the copy, read before the delete, is refused
    assert not cache.cached(name) and name in cache.wanted()
    assert index.load_wanted() == 1
    assert "cat-0" not in {h.id for h in index.query("cat", "images", vs[0].tolist(), 50)}


def test_a_load_that_began_before_a_reset_is_not_installed_after_it(settings: Settings) -> None:
    first = vector_index(settings)
    ids, vs = fill(first, "ida", 30)
    first.close()
    index = vector_index(settings)  # a new process: nothing written to this collection since it started
    index.query("ida", "images", vs[0].tolist(), 1)
    cache = index.cache
    assert cache is not None
    name = collection_name("ida", "images")
    epoch = cache.epoch(name)  # the loader starts reading ...
    index.reset()  # ... everything is dropped (a rebuild starts) ...
    assert not cache.install(name, epoch, ids, vs)  # ... and what it read is not kept
    assert not cache.cached(name)
    assert index.query("ida", "images", vs[0].tolist(), 5) == []
    index.close()


def test_a_collection_over_the_budget_stays_with_chroma(settings: Settings) -> None:
    index = vector_index(settings, cache_mb=1)  # 1 MiB: about 680 vectors of 384 floats
    try:
        _, small = fill(index, "dan", 100)
        _, big = fill(index, "eve", 900, seed=2)
        index.query("dan", "images", small[0].tolist(), 1)
        index.query("eve", "images", big[0].tolist(), 1)
        assert index.load_wanted() == 1
        assert index.cache is not None
        assert index.cache.cached(collection_name("dan", "images"))
        assert not index.cache.cached(collection_name("eve", "images"))
        assert index.query("eve", "images", big[3].tolist(), 1)[0].id == "eve-3"  # Chroma answers
        assert index.cache.wanted() == []  # and it is not read again and again
    finally:
        index.close()


def test_reset_and_close_drop_the_copies(index: VectorIndex) -> None:
    _, vs = fill(index, "fay", 20)
    loaded(index, "fay", vs[0].tolist())
    index.reset("fay")
    assert index.query("fay", "images", vs[0].tolist(), 5) == []
    fill(index, "gus", 20)
    loaded(index, "gus", vs[0].tolist())
    index.close()
    assert index.cache is not None and index.cache.nbytes == 0


def test_no_copies_with_a_chroma_server_or_a_zero_budget(tmp_path: Path) -> None:
    assert vector_index(Settings(home=tmp_path, chroma_url="http://127.0.0.1:9")).cache is None
    assert vector_index(Settings(home=tmp_path, vector_cache_mb=0)).cache is None
    with pytest.raises(ValueError, match="CONTEXT_SERVER_VECTOR_CACHE_MB"):
        Settings.from_env({"CONTEXT_SERVER_HOME": str(tmp_path), "CONTEXT_SERVER_VECTOR_CACHE_MB": "-1"})


def test_maintenance_loads_what_searches_asked_for(indexer: Indexer, memories: Memories) -> None:
    saved = memories.save("hal", "muted watercolour palettes", kind="style")
    indexer.drain()
    first = memories.search("hal", "soft watercolour colours", limit=5)
    indexer.maintain()
    again = memories.search("hal", "soft watercolour colours", limit=5)
    index = indexer._index
    assert index is not None and index.cache is not None
    assert index.cache.cached(collection_name("hal", "memories"))
    assert [m.memory_id for m in again] == [m.memory_id for m in first] == [saved.memory_id]
    assert again[0].score == pytest.approx(first[0].score, abs=1e-4)


def test_the_stdio_users_collections_are_copied_before_any_query(indexer: Indexer, memories: Memories) -> None:
    memories.save("ivy", "ink wash, lots of empty space", kind="style")
    indexer.drain()
    indexer.copy_early("ivy")  # what the App's warm-up asks for its configured user
    indexer.maintain()
    index = indexer._index
    assert index is not None and index.cache is not None
    assert index.cache.cached(collection_name("ivy", "styles"))
    assert index.cache.cached(collection_name("ivy", "images"))  # empty, and ready for the first image
    assert not index.cache.cached(collection_name("ivy", "memories"))  # only what enrichment needs


@pytest.mark.anyio
async def test_a_new_users_copy_is_loaded_soon_after_their_first_query(app: App) -> None:
    """Over HTTP users arrive one by one: the warm-up loop copies a collection a query asked for within
    about a second (COPY_POLL_SECONDS), not at the next 10-second maintenance pass."""
    await app.start()
    app.request_answered()
    with anyio.fail_after(30):
        while not app.indexer.uses_vectors:
            await anyio.sleep(0.05)
    app.memories.save("zoe", "charcoal sketches with heavy shadows", kind="style")
    first = app.memories.search("zoe", "dark charcoal drawing", limit=5)
    index = app.indexer._index
    assert index is not None and index.cache is not None
    name = collection_name("zoe", "memories")
    with anyio.fail_after(5):
        while not index.cache.cached(name):
            await anyio.sleep(0.05)
    again = app.memories.search("zoe", "dark charcoal drawing", limit=5)
    assert [m.memory_id for m in again] == [m.memory_id for m in first] and len(first) == 1


def test_ids_without_their_vectors_are_never_kept(index: VectorIndex) -> None:
    """A copy must be exact or absent: a read that brought back fewer vectors than ids is refused, and the
    collection is read again only when a query asks."""
    ids, vs = fill(index, "jon", 10)
    index.query("jon", "images", vs[0].tolist(), 1)
    cache = index.cache
    assert cache is not None
    name = collection_name("jon", "images")
    assert not cache.install(name, cache.epoch(name), ids, [])
    assert not cache.install(name, cache.epoch(name), ids, vs[:4])
    assert not cache.cached(name) and cache.wanted() == []
    assert index.query("jon", "images", vs[3].tolist(), 1)[0].id == "jon-3"  # Chroma answers, and asks again
    assert index.load_wanted() == 1 and cache.cached(name)


def test_a_copy_that_does_not_fit_a_write_is_dropped_and_the_write_stands(index: VectorIndex) -> None:
    ids, _ = fill(index, "kim", 10)
    cache = index.cache
    assert cache is not None
    name = collection_name("kim", "images")
    assert cache.install(name, cache.epoch(name), ids, vectors(10, seed=5)[:, :8])  # a copy of the wrong width
    fresh = vectors(1, seed=77)[0]
    index.upsert("kim", "images", ["kim-0"], [fresh.tolist()], ["changed"])  # must not fail on the copy
    assert not cache.cached(name) and name in cache.wanted()
    assert index.query("kim", "images", fresh.tolist(), 1)[0].id == "kim-0"
    assert index.load_wanted() == 1
    assert index.query("kim", "images", fresh.tolist(), 1)[0].id == "kim-0"


def test_copies_are_not_read_while_a_rebuild_refills_the_index(indexer: Indexer, memories: Memories) -> None:
    """CI once caught a copy read while a rebuild dropped and refilled the collections: it held ids without
    vectors and the next write failed. Copies now wait for the index's work (rebuild, drain, repair)."""
    for i in range(40):
        memories.save("lou", f"style number {i}: {'bold' if i % 2 else 'soft'} colours", kind="style")
    indexer.drain()
    indexer.copy_early("lou")
    started, release = threading.Event(), threading.Event()

    def busy() -> None:  # what a rebuild or a drain holds while it writes
        with indexer._work:
            started.set()
            release.wait(10)

    worker = threading.Thread(target=busy)
    worker.start()
    started.wait(10)
    indexer.load_copies()
    index = indexer._index
    assert index is not None and index.cache is not None
    assert not index.cache.cached(collection_name("lou", "styles"))  # not read beside the work
    release.set()
    worker.join()

    stop = threading.Event()

    def rebuild() -> None:
        try:
            indexer.rebuild()
        finally:
            stop.set()

    rebuilder = threading.Thread(target=rebuild)
    rebuilder.start()
    while not stop.is_set():  # the warm-up loop polls like this (once a second), on its own thread
        indexer.copy_early("lou")
        indexer.load_copies()
        time.sleep(0.002)  # hundreds of tries through the rebuild, without spinning against it for the GIL
    rebuilder.join()
    indexer.copy_early("lou")
    indexer.load_copies()
    name = collection_name("lou", "styles")
    assert index.cache.cached(name)
    saved = memories.save("lou", "a brand new ink style", kind="style")
    indexer.drain()  # writes the new vector through the copy: fails if the copy went wrong
    probe = indexer.embedder.embed(["a brand new ink style"])[0]
    stored = index.count("lou", "styles")  # similar styles were merged on saving: Chroma holds what is left
    from_copy = index.query("lou", "styles", probe, 100)
    assert from_copy[0].id == saved.memory_id and stored > 5 and len(from_copy) == stored


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_copies_make_room_for_a_new_user_least_recent_first(settings: Settings) -> None:
    """Over HTTP users come and go: when a new user's collection does not fit, the copies nobody queried
    for a minute make room, the least recently queried first; busy ones are never thrown out for it."""
    clock = Clock()
    index = vector_index(settings, cache_mb=1)  # room for ~680 vectors: two of these at a time
    index.cache = VectorCache(1024 * 1024, clock=clock)
    cache = index.cache
    try:
        data = {user: fill(index, user, 300, seed=n)[1] for n, user in enumerate(("amy", "ben", "cal"), 1)}
        for user in ("amy", "ben"):
            loaded(index, user, data[user][0].tolist())
        clock.now += 30
        index.query("ben", "images", data["ben"][1].tolist(), 1)  # ben is busy, amy idle
        clock.now += 40  # amy idle for 70 s, ben for 40 s

        assert index.query("cal", "images", data["cal"][2].tolist(), 1)[0].id == "cal-2"  # Chroma answers
        assert index.load_wanted() == 1
        assert cache.cached(collection_name("cal", "images")) and cache.cached(collection_name("ben", "images"))
        assert not cache.cached(collection_name("amy", "images"))  # the idle one made room
        assert cache.nbytes <= 1024 * 1024

        assert index.query("amy", "images", data["amy"][5].tolist(), 1)[0].id == "amy-5"  # from Chroma again
        assert index.load_wanted() == 0  # ben was queried 40 s ago and cal just now: no room, none thrown out
        assert cache.cached(collection_name("ben", "images")) and cache.cached(collection_name("cal", "images"))
        index.query("amy", "images", data["amy"][5].tolist(), 1)
        assert cache.wanted() == []  # not read again at every query while there is no room ...
        clock.now += 61
        index.query("cal", "images", data["cal"][0].tolist(), 1)  # cal busy again, ben now idle
        assert index.query("amy", "images", data["amy"][5].tolist(), 1)[0].id == "amy-5"
        assert index.load_wanted() == 1  # ... and a minute later ben's idle copy makes room
        assert cache.cached(collection_name("amy", "images")) and not cache.cached(collection_name("ben", "images"))
        assert index.query("amy", "images", data["amy"][7].tolist(), 1)[0].id == "amy-7"
    finally:
        index.close()


def test_a_copy_that_grows_past_the_budget_makes_room_or_goes_back_to_chroma(settings: Settings) -> None:
    clock = Clock()
    index = vector_index(settings, cache_mb=1)
    index.cache = VectorCache(1024 * 1024, clock=clock)
    cache = index.cache
    try:
        _, amy = fill(index, "amy", 300)
        _, ben = fill(index, "ben", 300, seed=2)
        loaded(index, "amy", amy[0].tolist())
        loaded(index, "ben", ben[0].tolist())
        more = vectors(200, seed=3)
        index.upsert("ben", "images", [f"ben-x{i}" for i in range(200)], more.tolist(), ["x"] * 200)
        assert not cache.cached(collection_name("ben", "images"))  # amy was just queried: ben goes to Chroma
        assert cache.cached(collection_name("amy", "images"))
        assert index.query("ben", "images", more[9].tolist(), 1)[0].id == "ben-x9"
        assert cache.nbytes <= 1024 * 1024
    finally:
        index.close()

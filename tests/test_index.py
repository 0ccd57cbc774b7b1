"""The Chroma adapter and the lock on its directory, on a real PersistentClient in tmp_path."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from context_server.adapters.index import IndexDamaged, IndexLock, VectorIndex, collection_name
from context_server.settings import Settings

from .conftest import vector_index


def _unit(*xs: float) -> list[float]:
    norm = sum(x * x for x in xs) ** 0.5
    return [x / norm for x in xs]


@pytest.fixture
def index(settings: Settings) -> Iterator[VectorIndex]:
    idx = vector_index(settings)
    yield idx
    idx.close()


@pytest.mark.parametrize("user_id", ["local", "a", "Ünïcødé user / with spaces", "x" * 600, "..", "-x-"])
def test_collection_names_meet_chromas_rules_for_any_user_id(user_id: str) -> None:
    for kind in ("memories", "images"):
        name = collection_name(user_id, kind)
        assert 3 <= len(name) <= 512
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]", name)
    assert collection_name(user_id, "memories") != collection_name(user_id, "images")
    assert collection_name(user_id, "memories") != collection_name(user_id + "!", "memories")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown index kind"):
        collection_name("u", "videos")


def test_upsert_query_delete_and_scores_are_cosine_similarity(index: VectorIndex) -> None:
    index.upsert(
        "ann",
        "memories",
        ["a", "b", "c"],
        [_unit(1, 0, 0), _unit(0.6, 0.8, 0), _unit(-1, 0, 0)],
        ["a", "b", "c"],
        [{"kind": "style"}, {"kind": "note"}, {"kind": "style"}],
    )
    hits = index.query("ann", "memories", _unit(1, 0, 0), 3)
    assert [h.id for h in hits] == ["a", "b", "c"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(0.6, abs=1e-5)
    assert hits[2].score == 0.0  # cosine -1 is clipped
    assert [h.id for h in index.query("ann", "memories", _unit(1, 0, 0), 3, where={"kind": "note"})] == ["b"]
    assert [h.id for h in index.query("ann", "memories", _unit(1, 0, 0), 3, ids=["c"])] == ["c"]
    index.upsert(
        "ann", "memories", ["a"], [_unit(0, 0, 1)], ["a again"], [{"kind": "style"}]
    )  # idempotent ids
    index.delete("ann", "memories", ["b", "never-existed"])
    assert index.count("ann", "memories") == 2


def test_users_and_kinds_never_share_a_collection(index: VectorIndex) -> None:
    index.upsert("ann", "memories", ["m1"], [_unit(1, 0)], ["x"], [{"kind": "note"}])
    index.upsert("ann", "images", ["i1"], [_unit(1, 0)], ["x"], [{"kind": "image"}])
    assert index.query("bob", "memories", _unit(1, 0), 5) == []
    assert [h.id for h in index.query("ann", "images", _unit(1, 0), 5)] == ["i1"]
    index.reset("ann")
    assert index.count("ann", "memories") == 0 == index.count("ann", "images")


def test_a_second_lock_on_the_same_directory_fails_until_released(tmp_path: Path) -> None:
    first, second = IndexLock(tmp_path / "chroma.lock"), IndexLock(tmp_path / "chroma.lock")
    assert first.try_acquire() and first.try_acquire()
    assert not second.try_acquire() and not second.held
    first.release()
    assert second.try_acquire()
    second.release()


def test_two_processes_cannot_both_hold_the_lock(tmp_path: Path) -> None:
    lock_path = tmp_path / "chroma.lock"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from context_server.adapters.index import IndexLock
            lock = IndexLock(Path({str(lock_path)!r}))
            print("held" if lock.try_acquire() else "refused", flush=True)
            sys.stdin.readline()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        ours = IndexLock(lock_path)
        assert not ours.try_acquire()
    finally:
        child.communicate("\n", timeout=30)
    assert ours.try_acquire(), "the kernel drops the lock when its process ends"
    ours.release()


def test_a_corrupt_directory_reports_damage_and_discard_starts_afresh(settings: Settings) -> None:
    settings.chroma_path.mkdir(parents=True)
    (settings.chroma_path / "chroma.sqlite3").write_bytes(b"this is not a database" * 1000)
    index = vector_index(settings)
    with pytest.raises(IndexDamaged):
        index.count("ann", "memories")
    index.discard()
    assert (settings.home / "chroma.damaged" / "chroma.sqlite3").exists()
    index.upsert("ann", "memories", ["m"], [_unit(1, 0)], ["m"], [{"kind": "note"}])
    assert index.count("ann", "memories") == 1
    index.close()


def test_identity_metadata_round_trips_and_reset_all_drops_it(index: VectorIndex) -> None:
    assert index.get_meta() is None
    index.set_meta({"index_id": "abc", "model": "m"})
    assert index.get_meta() == {"index_id": "abc", "model": "m"}
    index.upsert("ann", "memories", ["m"], [_unit(1, 0)], ["m"], [{"kind": "note"}])
    index.reset()
    assert index.get_meta() is None and index.count("ann", "memories") == 0

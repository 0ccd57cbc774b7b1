"""Bulk memory import/export (domain/memory/io.py) on a real Store, Chroma index and embedder."""

from __future__ import annotations

import json

from context_server.adapters.store import Store
from context_server.domain.memory.io import export_jsonl, import_jsonl
from context_server.domain.memory.service import Memories
from context_server.domain.search.indexing import Indexer


def line(content: str, **fields: object) -> str:
    return json.dumps({"content": content, **fields})


def test_import_merges_rewordings_keeps_opposites_apart_and_reports_broken_lines(memories: Memories) -> None:
    lines = [
        line("I prefer watercolor illustrations", kind="style", tags=["a"]),
        line("Watercolor illustrations are my preference", kind="style", tags=["b"]),
        "{not json",
        line(""),
        line("Use a warm pastel color palette", kind="style"),
        line("Use a cool pastel color palette", kind="style"),
        line("use a COOL pastel color palette.", kind="style", pinned=True),
        line("a note", kind="mood"),
        line("only this connection", scope="session"),
        "",
        "[1, 2]",
    ]
    report = import_jsonl(memories, "u1", lines)
    assert (report.added, report.merged) == (3, 2)
    assert [n for n, _ in report.skipped] == [3, 4, 8, 9, 11]
    reasons = dict(report.skipped)
    assert "JSON" in reasons[3] and "content" in reasons[4] and "kind" in reasons[8]
    assert "session" in reasons[9] and "object" in reasons[11]
    page, _ = memories.list("u1", limit=10)
    by_content = {m.content: m for m in page}
    assert set(by_content["I prefer watercolor illustrations"].tags) == {"a", "b"}
    assert by_content["Use a cool pastel color palette"].pinned


def test_importing_the_same_export_again_adds_nothing_and_is_searchable(
    memories: Memories, indexer: Indexer, store: Store
) -> None:
    memories.save("u1", "muted watercolour with paper texture", kind="style", tags=["paper"], pinned=True)
    memories.save("u1", "my dog is called Biscuit", kind="fact")
    exported = list(export_jsonl(memories, "u1"))
    assert [json.loads(x)["kind"] for x in exported] == ["style", "fact"]
    again = import_jsonl(memories, "u1", exported)
    assert (again.added, again.merged, again.skipped) == (0, 2, [])
    fresh = import_jsonl(memories, "u2", exported)
    assert fresh.added == 2
    assert store.one("select count(*) as n from outbox")["n"] == 0  # type: ignore[index]
    hits = memories.search("u2", "what is my dog's name", limit=1)
    assert hits[0].content == "my dog is called Biscuit"


def test_an_exported_id_is_kept_unless_another_user_owns_it(memories: Memories) -> None:
    own = memories.save("u1", "sunsets over the sea", kind="note").memory_id
    lines = [line("a castle in fog", memory_id="abc123", created_at="2024-01-02T03:04:05.000000Z"),
             line("a harbour at night", memory_id=own)]
    report = import_jsonl(memories, "u2", lines)
    assert report.added == 2
    page, _ = memories.list("u2", limit=10)
    ids = {m.content: m.memory_id for m in page}
    assert ids["a castle in fog"] == "abc123" and ids["a harbour at night"] != own
    assert memories.get("u2", "abc123").created_at == "2024-01-02T03:04:05.000000Z"
    assert memories.get("u1", own).content == "sunsets over the sea"

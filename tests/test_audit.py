"""The audit trail over stdio (the in-memory client runs the same middleware as every transport)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mcp import Client

from context_server.adapters.store import Store
from context_server.app import App
from context_server.domain.audit import Audit

pytestmark = pytest.mark.anyio


async def test_tool_calls_are_audited_as_the_local_user(client: Client, app: App) -> None:
    assert not (await client.call_tool("list_providers", {})).is_error
    assert (await client.call_tool("generate_image", {"prompt": ""})).is_error
    await client.list_tools()  # not a tool call: not audited
    rows = app.audit.recent()
    assert [(r["user_id"], r["tool"], r["outcome"]) for r in reversed(rows)] == [
        ("local", "list_providers", "ok"), ("local", "generate_image", "error")]


def test_rows_recorded_at_once_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    """Group commit: rows that arrive while another thread commits are written in its next transaction."""
    store = Store(tmp_path / "context.db")
    store.migrate()
    audit = Audit(store)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: audit.record(f"user{n % 4}", f"tool{n}", "ok", float(n)), range(200)))
    rows = audit.recent(limit=500)
    assert sorted(r["tool"] for r in rows) == sorted(f"tool{n}" for n in range(200))
    assert {r["user_id"] for r in rows if r["tool"] == "tool7"} == {"user3"}


def test_a_call_does_not_wait_for_its_audit_row_to_be_written(tmp_path: Path) -> None:
    """`record` queues: while another write holds the database, it still returns, and the row is written
    once the database is free."""
    store = Store(tmp_path / "context.db")
    store.migrate()
    audit = Audit(store)
    holding, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with store.write():
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=hold_the_writer)
    writer.start()
    assert holding.wait(30)
    recorder = threading.Thread(target=audit.record, args=("ann", "search_memories", "ok", 3.0))
    recorder.start()
    recorder.join(10)
    returned_while_held = not recorder.is_alive()
    release.set()
    writer.join(30)
    assert returned_while_held
    assert [(r["user_id"], r["tool"]) for r in audit.recent()] == [("ann", "search_memories")]
    audit.record("ann", "save_memory", "ok", 1.0)
    audit.close()  # what is queued at shutdown is written
    assert [r["tool"] for r in Store(tmp_path / "context.db").query("select tool from audit order by id")] == [
        "search_memories", "save_memory"]


def test_closing_right_after_a_call_stops_the_writer(tmp_path: Path) -> None:
    """`close` while the writer waits to gather rows: the writer stops, and the row is written. (The writer
    once cleared the close signal and waited for a row that never came; each App's close then took 5 s.)"""
    store = Store(tmp_path / "context.db")
    store.migrate()
    for n in range(3):
        audit = Audit(store, delay=0.2)
        audit.record("ann", f"tool{n}", "ok", 1.0)  # the writer wakes and sleeps `delay` before committing
        writer = audit._writer
        assert writer is not None
        time.sleep(0.05)  # close while it sleeps
        audit.close()
        assert not writer.is_alive()
    assert [r["tool"] for r in store.query("select tool from audit order by id")] == ["tool0", "tool1", "tool2"]

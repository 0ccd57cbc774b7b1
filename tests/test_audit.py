"""The audit trail over stdio (the in-memory client runs the same middleware as every transport)."""

from __future__ import annotations

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

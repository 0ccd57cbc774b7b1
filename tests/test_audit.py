"""The audit trail over stdio (the in-memory client runs the same middleware as every transport)."""

from __future__ import annotations

import pytest
from mcp import Client

from context_server.app import App

pytestmark = pytest.mark.anyio


async def test_tool_calls_are_audited_as_the_local_user(client: Client, app: App) -> None:
    assert not (await client.call_tool("list_providers", {})).is_error
    assert (await client.call_tool("generate_image", {"prompt": ""})).is_error
    await client.list_tools()  # not a tool call: not audited
    rows = app.audit.recent()
    assert [(r["user_id"], r["tool"], r["outcome"]) for r in reversed(rows)] == [
        ("local", "list_providers", "ok"), ("local", "generate_image", "error")]

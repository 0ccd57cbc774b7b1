"""The conformance fixtures build on the production server without hiding any of its own surface."""

from __future__ import annotations

import pytest
from mcp import Client

from context_server.app import App
from context_server.server import build_server

from .conformance.server import add_fixtures

pytestmark = pytest.mark.anyio


async def test_fixtures_sit_next_to_the_users_templates(app: App) -> None:
    server = build_server(app)
    add_fixtures(server)
    async with Client(server) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"poster", "watercolour", "test_simple_prompt", "test_prompt_with_arguments"} <= prompts
        fixture = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        assert "arg1='a'" in fixture.messages[0].content.text  # type: ignore[union-attr]
        template = await client.get_prompt("poster", {"subject": "a fox", "headline": "Hi"})
        assert "a fox" in template.messages[0].content.text  # type: ignore[union-attr]
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"generate_image", "test_simple_text", "json_schema_2020_12_tool"} <= tools

"""The MCP App link: which tools carry it, and the `ui://` resource a host reads (no browser needed).

tests/test_gallery_browser.py renders the same resource in Chromium inside a host page.
"""

from __future__ import annotations

import re

import pytest
from mcp import Client

from context_server.server.viewer import VIEWER_URI

from .conftest import call

pytestmark = pytest.mark.anyio


async def test_result_tools_link_the_viewer_and_others_do_not(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    linked = sorted(name for name, tool in tools.items() if (tool.meta or {}).get("ui"))
    assert linked == ["edit_image", "generate_image", "get_generation"]
    assert tools["generate_image"].meta == {"ui": {"resourceUri": VIEWER_URI}}


async def test_the_viewer_is_a_small_self_contained_mcp_app_with_a_declared_csp(client: Client) -> None:
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed[VIEWER_URI].mime_type == "text/html;profile=mcp-app"
    read = await client.read_resource(VIEWER_URI)
    content = read.contents[0]
    assert content.mime_type == "text/html;profile=mcp-app"
    html = content.text  # type: ignore[union-attr]
    assert html.startswith("<!DOCTYPE html>") and len(html.encode()) < 16_000
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing loaded from elsewhere
    assert "ui/initialize" in html and "ui/notifications/tool-result" in html
    assert content.meta == {"ui": {"csp": {"connectDomains": [], "resourceDomains": [], "frameDomains": [],
                                           "baseUriDomains": []}, "prefersBorder": True}}


async def test_results_are_unchanged_for_hosts_without_apps(client: Client) -> None:
    """The text, the preview and the resource link are still there: the link is only on the tool."""
    result = await client.call_tool("generate_image", {"prompt": "a lighthouse at dusk"})
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "image", "resource_link"]
    done = await call(client, "get_generation", job_id=result.structured_content["job_id"])  # type: ignore[index]
    assert done["status"] == "completed"

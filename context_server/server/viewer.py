"""The MCP App (SEP-1865) that shows a generation result: a `ui://` HTML resource the result tools link to.

Hosts that render MCP Apps (Claude Desktop) read `VIEWER_URI` once and show it beside each result of
`generate_image`, `edit_image` and `get_generation`, delivering the tool result over the Apps bridge
(`ui/notifications/tool-result`). The page draws the preview the result already carries (a `data:` URL,
so it needs no network and declares none in its CSP) and calls this server's own tools through the host
for its actions: use as reference, make a variation, pin or forget an applied style, open the parent.
Hosts without the extension ignore the `_meta.ui` link and keep the text, preview and resource link.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, Apps, ResourceCsp

__all__ = ["APP_MIME_TYPE", "VIEWER_META", "VIEWER_URI", "viewer_extension", "viewer_html"]

VIEWER_URI = "ui://context-server/result.html"
#: `_meta` for a tool whose results the viewer renders.
VIEWER_META: dict[str, Any] = {"ui": {"resourceUri": VIEWER_URI}}


def viewer_html() -> str:
    return files("context_server.server").joinpath("viewer.html").read_text(encoding="utf-8")


def viewer_extension() -> Apps:
    """The Apps extension holding the viewer resource; it also advertises `io.modelcontextprotocol/ui`."""
    apps = Apps()
    apps.add_html_resource(
        VIEWER_URI, viewer_html(), name="result-viewer", title="Generation result",
        description="Shows a generated image with the prompt as sent and the `applied` receipt, with actions "
                    "(use as reference, make a variation, pin or forget a style, open the parent).",
        # Nothing outside the page: the image arrives in the tool result, actions go through the host.
        csp=ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[]),
        prefers_border=True,
    )
    return apps

"""The MCP surface: protocol in, domain calls out, nothing else.

`build_server` and `ContextServer` are loaded on first use, so light modules of this package (`bind`) import
without the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from context_server.server.mcp_server import ContextServer, build_server

__all__ = ["ContextServer", "build_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from context_server.server import mcp_server

        return getattr(mcp_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

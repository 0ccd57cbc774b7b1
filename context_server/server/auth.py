"""Who is calling: the verified bearer token over HTTP, the configured local user over stdio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context

if TYPE_CHECKING:
    from context_server.app import App


__all__ = ["current_user", "session_key"]

STDIO_CONNECTION = "stdio"


def current_user(app: App) -> str:
    token = get_access_token()
    if token is not None:
        return token.subject or token.client_id
    return app.settings.user


def session_key(ctx: Context | None) -> str:
    """The connection a call belongs to: the HTTP session id when there is one, else the process."""
    if ctx is not None:
        try:
            headers = ctx.headers
        except Exception:
            headers = None
        if headers:
            sid = headers.get("mcp-session-id")
            if sid:
                return f"http:{sid}"
            return "http:stateless"
    return STDIO_CONNECTION

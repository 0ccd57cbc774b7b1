"""Streamable HTTP at `/mcp`: the stdio server's tools behind bearer tokens, Host/Origin checks and a body cap.

A request passes, in order: the Host/Origin guard (421 / 403, before anything else, so a DNS-rebinding
page learns nothing, not even whether a token is needed), the SDK's bearer-token check (401), the SDK's
body cap (413 past 4 MiB) and its own Host/Origin/Content-Type checks, then the MCP session. The user
of every call is the verified token's subject; see `auth.current_user`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from context_server.app import App
from context_server.domain.users import Users
from context_server.server.bind import allow_lists, is_loopback
from context_server.server.frames import HttpFrameGuard
from context_server.server.gallery.auth import GalleryAuth
from context_server.server.gallery.routes import build_gallery
from context_server.server.mcp_server import ContextServer, build_server
from context_server.settings import Settings

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "HostOriginGuard",
    "UserTokenVerifier",
    "build_http_app",
    "check_bind",
    "is_loopback",
    "serve_http",
    "transport_security",
    "uvicorn_config",
]

log = logging.getLogger(__name__)

#: SPEC §8: an HTTP request body is at most 4 MiB (the SDK's default, named here so it cannot drift).
MAX_BODY_BYTES = DEFAULT_MAX_REQUEST_BODY_SIZE
#: The request line plus headers of one HTTP request, at most (uvicorn's h11 limit; browsers send ~1-2 KiB).
MAX_HEADER_BYTES = 16 * 1024
def transport_security(host: str, allowed_hosts: list[str], allowed_origins: list[str], *,
                       auth: bool = True) -> TransportSecuritySettings:
    """Host and Origin allow-lists for a bind address (`bind.allow_lists`), as the SDK's transport security."""
    hosts, origins = allow_lists(host, allowed_hosts, allowed_origins, auth=auth)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


class UserTokenVerifier(TokenVerifier):
    """The SDK's verifier seam, answered from the `tokens` table: a live token of a live user, or nothing."""

    def __init__(self, users: Users) -> None:
        self.users = users

    async def verify_token(self, token: str) -> AccessToken | None:
        user_id = self.users.verify(token)
        if user_id is None:
            return None
        return AccessToken(token=token, client_id=user_id, subject=user_id, scopes=[])


class HostOriginGuard:
    """Checks the size of the request head, then Host and Origin, on every HTTP request, ahead of
    authentication and on every path. (uvicorn's h11 limit bounds what it buffers while a head arrives, but
    lets through a head that arrives whole in one read; this check is exact: 431 past `MAX_HEADER_BYTES`.)
    It also trims the whitespace around header values (RFC 9110 §5.5).

    The SDK runs the same check inside the MCP endpoint, after the bearer check; running it first also
    covers requests without a token and any path other than `/mcp`. Statuses follow the SDK: 421 for
    a bad Host, 403 for a bad Origin.
    """

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings) -> None:
        self.app = app
        self.security = TransportSecurityMiddleware(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            head = sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            if head > MAX_HEADER_BYTES:
                await PlainTextResponse(f"Request header fields too large: at most {MAX_HEADER_BYTES // 1024} KiB",
                                        status_code=431)(scope, receive, send)
                return
            # RFC 9110 §5.5: a field value has no leading or trailing whitespace; some HTTP parsers keep it,
            # and the SDK compares `Mcp-Name` and `Mcp-Method` to the body exactly.
            scope = {**scope, "headers": [(k, v.strip(b" \t")) for k, v in scope["headers"]]}
            refused = await self.security.validate_request(Request(scope), is_post=False)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def check_bind(settings: Settings, host: str, *, auth: bool) -> TransportSecuritySettings:
    """The transport security for this bind; raises `InvalidInput` saying what to change when it is unsafe."""
    return transport_security(host, settings.allowed_hosts, settings.allowed_origins, auth=auth)


def build_http_app(app: App, *, host: str, port: int, auth: bool = True,
                   extend: Callable[[ContextServer], None] | None = None) -> tuple[ContextServer, ASGIApp]:
    """The MCP server and the ASGI app serving it; raises `InvalidInput` for an unsafe configuration.

    `extend` registers more tools, resources or prompts before the app is built (the conformance
    fixtures use it, so the suite runs against exactly this wiring).
    """
    security = check_bind(app.settings, host, auth=auth)
    kwargs: dict[str, Any] = {}
    if auth:
        base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        kwargs["token_verifier"] = UserTokenVerifier(app.users)
        # The SDK requires an issuer URL; it is only used to advertise an OAuth authorization server,
        # which static tokens do not have, so it names this server and nothing links to it.
        # resource_server_url=None keeps the SDK from publishing protected-resource metadata: a client
        # reading it would try an OAuth flow that cannot succeed, instead of using its configured header.
        kwargs["auth"] = AuthSettings(issuer_url=base, resource_server_url=None)  # type: ignore[arg-type]
    server = build_server(app, **kwargs)
    if extend is not None:
        extend(server)
    starlette = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host,
                                           max_request_body_size=MAX_BODY_BYTES)
    _guard_frames(starlette)
    # The gallery checks the same tokens itself (a browser brings them in a cookie, see gallery/auth.py).
    gallery = build_gallery(app, GalleryAuth(app.users.verify, open_as=None if auth else app.settings.user))
    starlette.router.routes.append(Mount("/gallery", app=gallery))
    return server, HostOriginGuard(starlette, security)


def _guard_frames(starlette: Any) -> None:
    """Put `HttpFrameGuard` in front of the MCP endpoint, behind the bearer check when there is one, so a
    caller without a token still gets 401 first, whatever its body."""
    for route in starlette.routes:
        if getattr(route, "path", None) != "/mcp":
            continue
        holder = route.app if hasattr(route.app, "app") else route  # RequireAuthMiddleware(endpoint) or the endpoint
        holder.app = HttpFrameGuard(holder.app, MAX_BODY_BYTES)
        return
    raise RuntimeError("the SDK's Streamable HTTP app has no /mcp route to guard")


def uvicorn_config(asgi: ASGIApp, *, host: str, port: int, **options: Any) -> Any:
    """uvicorn's settings for this server: h11 (whose header cap is configurable, unlike httptools'), request
    heads capped at `MAX_HEADER_BYTES` (a larger one is refused with 400 before any of it reaches the app)."""
    import uvicorn

    return uvicorn.Config(asgi, host=host, port=port, log_config=None, server_header=False, http="h11",
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, **options)


async def serve_http(app: App, *, host: str, port: int, auth: bool = True,
                     extend: Callable[[ContextServer], None] | None = None) -> None:
    """Serve until interrupted; logs go through the stdlib root logger (stderr), never stdout."""
    import uvicorn

    _, asgi = build_http_app(app, host=host, port=port, auth=auth, extend=extend)
    config = uvicorn_config(asgi, host=host, port=port, log_level=app.settings.log_level.lower())
    log.info("serving Streamable HTTP at http://%s:%d/mcp and the gallery at /gallery (%s)", host, port,
             "bearer tokens" if auth else f"no auth, acting as {app.settings.user!r}")
    await uvicorn.Server(config).serve()

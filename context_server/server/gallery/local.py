"""`context-server gallery`: the gallery alone, for a stdio user, on loopback behind a one-time link.

The link carries a random token made for this run, so another account on the machine, or a web page
trying DNS rebinding, cannot read the gallery even though it listens on 127.0.0.1; Host and Origin are
checked as on the HTTP transport.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from context_server.errors import InvalidInput
from context_server.server.gallery.auth import GalleryAuth
from context_server.server.gallery.routes import build_gallery

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["local_gallery_app", "serve_gallery"]

log = logging.getLogger(__name__)


def local_gallery_app(app: App, token: str, host: str = "127.0.0.1") -> ASGIApp:
    """The gallery for `app.settings.user`, opened by `token`, with the HTTP transport's Host/Origin guard."""
    from context_server.server.http import HostOriginGuard, transport_security

    user = app.settings.user

    def verify(candidate: str) -> str | None:
        return user if hmac.compare_digest(candidate.encode(), token.encode()) else None

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse("/gallery/", status_code=307)

    gallery = build_gallery(app, GalleryAuth(verify))
    starlette = Starlette(routes=[Route("/", home), Mount("/gallery", app=gallery)])
    return HostOriginGuard(starlette, transport_security(host, [], []))


async def serve_gallery(app: App, *, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True,
                        announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. Port 0 takes a free one; `announce(url)` hears the address once it is bound."""
    import uvicorn

    from context_server.server.http import is_loopback

    if not is_loopback(host):
        raise InvalidInput(f"the local gallery listens on loopback only, not {host}; for a team, use "
                           "`context-server serve --transport http`, which serves /gallery per user")
    token = secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{bound}/gallery/?token={token}"
    await app.start()
    app.request_answered()
    config = uvicorn.Config(local_gallery_app(app, token, host), log_config=None, server_header=False,
                            log_level=app.settings.log_level.lower())
    if announce is not None:
        announce(link)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(link,), daemon=True).start()
    await uvicorn.Server(config).serve(sockets=[sock])

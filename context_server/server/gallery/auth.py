"""Who is looking at the gallery: a token checked on every request, the same token the MCP endpoint takes.

A browser cannot add an `Authorization` header to a link, so the token arrives once in the address
(`/gallery/?token=...`, the link `context-server gallery` prints and opens) or through the sign-in form,
and is kept in an HttpOnly, SameSite=Strict cookie scoped to `/gallery`; the address is then redirected
to itself without the token so it stays out of the history. Scripts may send `Authorization: Bearer`.
Every request is checked again (a revoked token stops working at once); the user is the token's owner
and nothing else, so no page can be asked for another user's data.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

__all__ = ["COOKIE", "GalleryAuth"]

COOKIE = "context_server_gallery"
#: A month: the cookie is only as good as the token in it, which is checked on every request.
COOKIE_MAX_AGE = 30 * 24 * 3600


class GalleryAuth:
    """`verify(token)` → user id or None. `open_as` names the user when no token is needed (`--no-auth`)."""

    def __init__(self, verify: Callable[[str], str | None], *, base: str = "/gallery",
                 open_as: str | None = None) -> None:
        self.verify = verify
        self.base = base
        self.open_as = open_as

    def user(self, request: Request) -> str | None:
        if self.open_as is not None:
            return self.open_as
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.verify(header[7:].strip())
        cookie = request.cookies.get(COOKIE)
        return self.verify(cookie) if cookie else None

    def token_redirect(self, request: Request) -> Response | None:
        """A `?token=` in the address: keep it in the cookie and show the same address without it."""
        token = request.query_params.get("token")
        if token is None:
            return None
        if self.verify(token) is None:
            return None  # the page answers 401 with the sign-in form
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        self.set_cookie(request, response, token)
        return response

    def set_cookie(self, request: Request, response: Response, token: str) -> None:
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path=self.base, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=self.base, httponly=True, samesite="strict")

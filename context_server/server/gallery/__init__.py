"""The gallery: the user's images, memories, templates and usage as web pages, at `/gallery`.

Served by `context-server gallery` (one local user, loopback, a one-time link) and by
`serve --transport http` beside `/mcp` (each user signs in with their own token). See docs/gallery.md.
"""

from __future__ import annotations

from context_server.server.gallery.auth import COOKIE, GalleryAuth
from context_server.server.gallery.local import local_gallery_app, serve_gallery
from context_server.server.gallery.routes import build_gallery

__all__ = ["COOKIE", "GalleryAuth", "build_gallery", "local_gallery_app", "serve_gallery"]

"""The App, opened after the server has answered its client: what the stdio server holds instead of an App.

A stdio client (Claude Desktop, Claude Code) waits for `initialize` and `tools/list` before the user can
do anything. Answering them needs the MCP SDK and the tool definitions, nothing else; opening the App
needs the store, image, provider and index code (sqlite-utils, numpy, Pillow, httpx: about 0.5 s of
imports and set-up on 2 cores). So the stdio server starts with a `DeferredApp` and answers first:

- `start()` (the server's lifespan) schedules the opening; it does not open anything;
- the App is created on a worker thread once the first request other than the handshake has been
  answered, or after `startup.FIRST_ANSWER_FALLBACK_SECONDS` if none comes; then it starts (interrupted jobs resume,
  the embedder warms up) as it would have at start-up;
- anything that needs the App before then (a tool call right after `initialize`) opens it at once and
  waits for it, so no request ever sees a half-opened App.

Every attribute other than `settings` and the lifecycle methods is the App's own. The HTTP server and the
tests open the App up front and hand the server the App itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from context_server.errors import ContextServerError
from context_server.settings import Settings
from context_server.startup import FIRST_ANSWER_FALLBACK_SECONDS, after_first_answer

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["DeferredApp"]

log = logging.getLogger(__name__)



def _create_app(settings: Settings) -> App:
    from context_server.app import App

    return App.create(settings)


class DeferredApp:
    """Stands in for an `App` that is created after the first answer (see the module docstring)."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], App] = _create_app,
                 fallback_seconds: float = FIRST_ANSWER_FALLBACK_SECONDS) -> None:
        self.settings = settings
        self._factory = factory
        self._fallback_seconds = fallback_seconds
        self._app: App | None = None
        self._lock = threading.Lock()
        self._answered: asyncio.Event | None = None
        self._opener: asyncio.Task[None] | None = None

    @property
    def opened(self) -> bool:
        """Whether the App exists yet."""
        return self._app is not None

    def open(self) -> App:
        """The App, created now (on this thread) unless it exists or another thread is creating it."""
        app = self._create()
        self._start(app)
        return app

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: everything the tools use from the App.
        if name.startswith("_"):  # our own state, asked for before __init__ set it (copy, pickle)
            raise AttributeError(name)
        return getattr(self.open(), name)

    async def start(self) -> None:
        """Schedule the opening; returns at once."""
        if self._opener is None:
            self._answered = asyncio.Event()
            self._opener = asyncio.get_running_loop().create_task(self._open_later(), name="open-app")

    def request_answered(self) -> None:
        """Called after each answered request; the first releases the opening (and, once open, the warm-up)."""
        if self._answered is not None:
            self._answered.set()
        if self._app is not None:
            self._app.request_answered()

    async def _open_later(self) -> None:
        assert self._answered is not None
        await after_first_answer(self._answered, self._fallback_seconds)
        try:
            app = await anyio.to_thread.run_sync(self._create)
        except ContextServerError as exc:
            # The next request that needs the App tries again and reports the error to its client.
            log.error("%s", exc, exc_info=exc.__cause__)
            return
        self._start(app)

    def _create(self) -> App:
        app = self._app
        if app is not None:
            return app
        with self._lock:
            if self._app is None:
                try:
                    self._app = self._factory(self.settings)
                except Exception as exc:
                    raise ContextServerError(
                        f"the data directory {self.settings.home} could not be opened: {exc}. It must be a "
                        "writable directory; `context-server doctor` checks it.") from exc
            return self._app

    def _start(self, app: App) -> None:
        """Start the App once, on the event loop's thread (its start schedules tasks on the loop)."""
        if app.started:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: the opener starts it on the loop
        app.start_now()
        if self._answered is not None and self._answered.is_set():
            app.request_answered()

    async def aclose(self) -> None:
        if self._opener is not None:
            self._opener.cancel()
            with contextlib.suppress(BaseException):
                await self._opener
        if self._app is not None:
            await self._app.aclose()

"""Real Chromium (Debian's package, driven by Playwright) against a real server running in a thread.

Browser downloads are not available, so Playwright launches the system Chromium through
`executable_path`; `.ci/run` installs it with apt, and axe-core from npm. Without them here the
browser tests skip and say what to install.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import uvicorn

from context_server.app import App
from context_server.server.http import build_http_app

from .http_support import RunningServer

__all__ = ["ARTIFACTS", "AXE", "CHROMIUM", "ThreadedServer", "axe_violations", "launch", "needs_browser", "shot"]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CONTEXT_SERVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(os.environ.get("AXE_CORE_JS") or ROOT / ".ci" / "npm" / "node_modules" / "axe-core" / "axe.min.js")
ARTIFACTS = Path(os.environ.get("CONTEXT_SERVER_ARTIFACTS") or ROOT / ".ci" / "artifacts")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: pip install -e '.[dev]'"
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (.ci/run does)"
    return None


needs_browser = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot into the CI log folder ($CONTEXT_SERVER_ARTIFACTS, else .ci/artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Any, frame: Any | None = None) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (or one of its frames)."""
    if not AXE.exists():
        reason = (f"axe-core is missing at {AXE}: npm install --prefix .ci/npm axe-core (.ci/run does), "
                  "or point AXE_CORE_JS at axe.min.js")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    target = frame or page
    target.add_script_tag(path=str(AXE))
    result = target.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["html"][:160] for n in v["nodes"][:3]]}
            for v in result if v["impact"] in ("serious", "critical")]


class ThreadedServer:
    """The HTTP transport (MCP at /mcp, gallery at /gallery) in a thread of its own, with its own loop,
    so synchronous Playwright can drive a browser against it from the test thread."""

    def __init__(self, app: App, *, auth: bool = True) -> None:
        self.app = app
        _, asgi = build_http_app(app, host="127.0.0.1", port=0, auth=auth)
        self.server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, name="gallery-server", daemon=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.base = ""

    def _run(self) -> None:
        async def main() -> None:
            try:
                await self.server.serve()
            finally:
                await self.app.aclose()

        asyncio.run(main())

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        for _ in range(3000):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.pool.shutdown()

    def mcp(self, token: str, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run `work(client)` with an MCP client over real HTTP, from any thread (even inside Playwright)."""
        running = RunningServer(app=self.app, url=f"{self.base}/mcp")

        async def session() -> T:
            async with running.client(token) as client:
                return await work(client)

        return self.pool.submit(anyio.run, session).result(timeout=120)

    def call(self, token: str, tool: str, **args: Any) -> dict[str, Any]:
        """A tool call that must succeed; its structured content."""

        async def work(client: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            assert not result.is_error, result.content[0].text
            return dict(result.structured_content)

        return self.mcp(token, work)

    def call_raw(self, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """A tool call's whole result as the wire carries it (content, structuredContent, isError)."""

        async def work(client: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, args)
            return dict(result.model_dump(mode="json", by_alias=True, exclude_none=True))

        return self.mcp(token, work)

"""A real Streamable HTTP server on a loopback port, in the test's event loop, and clients for it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from context_server.app import App
from context_server.server.http import build_http_app, uvicorn_config

INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "test", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
#: The TLS context every test client shares. Their URLs are plain http on loopback, but an httpx client
#: builds a default context when it is made, reading the CA bundle: ~40 ms of CPU per client, and the HTTP
#: tests make hundreds. The same default context, made once.
TLS = ssl.create_default_context()


@dataclass
class RunningServer:
    app: App
    url: str  # http://127.0.0.1:PORT/mcp

    def client(self, token: str | None) -> Client:
        """An MCP client over real HTTP, sending `token` as its bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0), verify=TLS)
        return Client(streamable_http_client(self.url, http_client=http))

    def raw(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=30.0, verify=TLS)


@asynccontextmanager
async def serve(app: App, *, auth: bool = True) -> AsyncIterator[RunningServer]:
    _, asgi = build_http_app(app, host="127.0.0.1", port=0, auth=auth)
    config = uvicorn_config(asgi, host="127.0.0.1", port=0, lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # uvicorn < 0.29
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield RunningServer(app=app, url=f"http://127.0.0.1:{port}/mcp")
        finally:
            server.should_exit = True

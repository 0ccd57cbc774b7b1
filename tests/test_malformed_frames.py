"""Every frame the server cannot handle gets a JSON-RPC error, over stdio and over HTTP alike (SPEC §8).

Each malformed line of the fault campaign is replayed against a spawned stdio server (followed by a ping,
which must still be answered) and POSTed to a real HTTP server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from context_server.app import App

from .conftest import WORKTREE
from .http_support import INITIALIZE, MCP_HEADERS, RunningServer, serve

pytestmark = pytest.mark.anyio

PARSE, INVALID = -32700, -32600

#: (line, expected code, expected id): the 18 lines the SDK dropped in silence, and their neighbours.
MALFORMED: list[tuple[bytes, int, Any]] = [
    (b'{"jsonrpc": "2.0", "id": 101, "method": "ping"', PARSE, None),  # truncated
    (b"this is not json", PARSE, None),
    (b"\xff\xfe\x00garbage", PARSE, None),
    (b"null", INVALID, None),
    (b"42", INVALID, None),
    (b'"str"', INVALID, None),
    (b"{}", INVALID, None),
    (b'{"jsonrpc": "2.0", "id": 102, "method": 123}', INVALID, 102),
    (b'{"jsonrpc": "1.0", "id": 103, "method": "ping"}', INVALID, 103),
    (b'{"id": 104, "method": "ping"}', INVALID, 104),
    (b'{"jsonrpc": "2.0", "id": 108, "method": "tools/list", "params": [1, 2]}', INVALID, 108),
    (b'{"jsonrpc": "2.0", "id": "s-105", "method": "tools/list", "params": "a string"}', INVALID, "s-105"),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', INVALID, None),
    (b'{"jsonrpc": "2.0", "id": {"nested": 1}, "method": "ping"}', INVALID, None),
    (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', INVALID, None),
    (b'[{"jsonrpc": "2.0", "id": 106, "method": "ping"}]', INVALID, None),
    (b"[]", INVALID, None),
    (b"[" * 100_000 + b"]" * 100_000, PARSE, None),
    (b'{"jsonrpc": "2.0", "method": "ping", "params": []}', INVALID, None),  # a notification with bad params
    (b'{"jsonrpc": "2.0", "id": 107}', INVALID, 107),  # neither request nor response
]


class StdioPeer:
    """A spawned server and the raw lines it writes to stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        await self.proc.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line, "the server closed stdout"
        message: dict[str, Any] = json.loads(line)
        return message

    async def until(self, rid: Any) -> list[dict[str, Any]]:
        """Every message up to and including the response with id `rid`."""
        seen = [await self.receive()]
        while seen[-1].get("id") != rid or "method" in seen[-1]:
            seen.append(await self.receive())
        return seen


async def _spawn(home: Path, **env: str) -> AsyncIterator[StdioPeer]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "context_server.cli", cwd=str(WORKTREE),
        env={**os.environ, "PYTHONPATH": str(WORKTREE), "CONTEXT_SERVER_HOME": str(home),
             "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        limit=1024 * 1024)
    peer = StdioPeer(proc)
    try:
        await peer.send(json.dumps(INITIALIZE).encode())
        assert "result" in (await peer.until(1))[-1]
        await peer.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        yield peer
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def stdio(home: Path) -> AsyncIterator[StdioPeer]:
    async for peer in _spawn(home):
        yield peer


async def test_every_malformed_stdio_line_gets_one_error_and_the_server_keeps_serving(stdio: StdioPeer) -> None:
    for n, (line, code, rid) in enumerate(MALFORMED):
        await stdio.send(line)
        await stdio.send(json.dumps({"jsonrpc": "2.0", "id": f"ping-{n}", "method": "ping"}).encode())
        *errors, pong = await stdio.until(f"ping-{n}")
        assert pong.get("result") == {}, (line[:80], pong)
        assert len(errors) == 1, (line[:80], errors)
        (error,) = errors
        assert error["jsonrpc"] == "2.0" and error["id"] == rid, (line[:80], error)
        assert error["error"]["code"] == code, (line[:80], error)
        assert error["error"]["message"].startswith("Parse error" if code == PARSE else "Invalid request")
    # ...and a real request still works afterwards.
    await stdio.send(b'{"jsonrpc": "2.0", "id": 900, "method": "tools/list"}')
    assert (await stdio.until(900))[-1]["result"]["tools"]


async def test_a_stdio_line_over_the_frame_limit_is_refused_and_the_next_line_is_served(home: Path) -> None:
    async for stdio in _spawn(home, CONTEXT_SERVER_MAX_FRAME_BYTES="65536"):
        huge = b'{"jsonrpc": "2.0", "id": 555, "method": "ping", "params": {"x": "' + b"a" * 2_000_000 + b'"}}'
        await stdio.send(huge)
        await stdio.send(b'{"jsonrpc": "2.0", "id": 556, "method": "ping"}')
        error, pong = await stdio.until(556)
        assert error["id"] == 555 and error["error"]["code"] == INVALID
        assert "larger than 65,536 bytes" in error["error"]["message"]
        assert "CONTEXT_SERVER_MAX_FRAME_BYTES" in error["error"]["message"]
        assert pong == {"jsonrpc": "2.0", "id": 556, "result": {}}
        # Just under the limit is still a frame.
        fits = b'{"jsonrpc": "2.0", "id": 557, "method": "ping", "params": {"x": "' + b"a" * 60_000 + b'"}}'
        await stdio.send(fits)
        assert (await stdio.until(557))[-1] == {"jsonrpc": "2.0", "id": 557, "result": {}}


async def test_each_refused_stdio_line_is_logged_as_one_line(home: Path) -> None:
    async for peer in _spawn(home):
        await peer.send(b'{"jsonrpc": "2.0", "id": 108, "method": "tools/list", "params": [1, 2]}')
        await peer.until(108)
        assert peer.proc.stdin is not None
        peer.proc.stdin.close()
        await asyncio.wait_for(peer.proc.wait(), 20)
        assert peer.proc.stderr is not None
        log = (await peer.proc.stderr.read()).decode()
        refused = [line for line in log.splitlines() if "refused a frame" in line]
        assert len(refused) == 1 and "-32600" in refused[0] and "id 108" in refused[0], log
        assert "Traceback" not in log


@pytest.fixture
async def http(app: App) -> AsyncIterator[tuple[RunningServer, str]]:
    _, token = app.users.add("alice")
    async with serve(app) as running:
        yield running, token


async def test_every_malformed_body_gets_the_same_error_over_http(http: tuple[RunningServer, str]) -> None:
    server, token = http
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    async with server.raw() as client:
        for line, code, rid in MALFORMED:
            response = await client.post(server.url, content=line, headers=headers)
            assert response.status_code == 400, (line[:80], response.status_code, response.text)
            body = response.json()
            assert body["id"] == rid and body["error"]["code"] == code, (line[:80], body)
        # A token is checked before the body is looked at.
        response = await client.post(server.url, content=b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}',
                                     headers=MCP_HEADERS)
        assert response.status_code == 401
    async with server.client(token) as mcp:
        assert (await mcp.list_tools()).tools


async def test_a_request_head_over_16_kib_is_refused_and_the_server_keeps_serving(
    http: tuple[RunningServer, str], caplog: pytest.LogCaptureFixture,
) -> None:
    server, token = http
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    async with server.raw() as client:
        response = await client.post(server.url, json=INITIALIZE, headers={**headers, "X-Padding": "a" * 64 * 1024})
        assert response.status_code == 431 and "16 KiB" in response.text
    # A head that trickles in is cut off by uvicorn's h11 buffer limit long before it is complete.
    host, port = server.url.split("/")[2].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0
    try:
        writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        for _ in range(64):
            writer.write(b"a" * 4096)
            await writer.drain()
            sent += 4096
            await asyncio.sleep(0.02)
        answer = await asyncio.wait_for(reader.read(100), 10)
    except ConnectionError:
        answer = b""
    finally:
        writer.close()
    assert sent < 64 * 4096 or answer.startswith(b"HTTP/1.1 400"), (sent, answer)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
    assert "Invalid HTTP request received" in caplog.text
    async with server.client(token) as mcp:
        assert (await mcp.list_tools()).tools
